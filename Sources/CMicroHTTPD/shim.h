#ifndef GPUBROKER_CMICROHTTPD_SHIM_H
#define GPUBROKER_CMICROHTTPD_SHIM_H
#include <stdint.h>
#include <stddef.h>
#include <stdarg.h>
#include <sys/types.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <microhttpd.h>
/* MHD_start_daemon and MHD_get_connection_info are variadic: Swift cannot call
   them, so the MicroHTTP module adds static inline wrappers here as it needs them. */
#endif
