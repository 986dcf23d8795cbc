import Testing

@Test func placeholder_DrawdownLedgerTests() { #expect(Bool(true)) }
