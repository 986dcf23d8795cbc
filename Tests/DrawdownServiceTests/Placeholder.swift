import Testing

@Test func placeholder_DrawdownServiceTests() { #expect(Bool(true)) }
