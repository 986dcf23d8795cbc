// DrawdownService
