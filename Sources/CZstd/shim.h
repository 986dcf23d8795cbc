#ifndef DRAWDOWN_CZSTD_SHIM_H
#define DRAWDOWN_CZSTD_SHIM_H
#include <zstd.h>
#endif
