// DrawdownCore
