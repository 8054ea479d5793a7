#ifndef GPUBROKER_CLIBPQ_SHIM_H
#define GPUBROKER_CLIBPQ_SHIM_H
#include <libpq-fe.h>

/* PG_DIAG_* are char macros: Swift imports them poorly, so name them here. */
static const int gpb_PG_DIAG_SQLSTATE = PG_DIAG_SQLSTATE;
static const int gpb_PG_DIAG_MESSAGE_PRIMARY = PG_DIAG_MESSAGE_PRIMARY;
static const int gpb_PG_DIAG_MESSAGE_DETAIL = PG_DIAG_MESSAGE_DETAIL;
static const int gpb_PG_DIAG_CONSTRAINT_NAME = PG_DIAG_CONSTRAINT_NAME;
#endif
