import Testing

@Test func placeholder_DrawdownCoreTests() { #expect(Bool(true)) }
