import Testing

@Test func placeholder_DrawdownCLITests() { #expect(Bool(true)) }
