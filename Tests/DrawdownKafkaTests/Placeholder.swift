import Testing

@Test func placeholder_DrawdownKafkaTests() { #expect(Bool(true)) }
