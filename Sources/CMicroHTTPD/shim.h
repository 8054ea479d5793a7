#ifndef GPUBROKER_CMICROHTTPD_SHIM_H
#define GPUBROKER_CMICROHTTPD_SHIM_H
#include <stdint.h>
#include <stddef.h>
#include <stdarg.h>
#include <string.h>
#include <errno.h>
#include <sys/types.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>
#include <microhttpd.h>

/* MHD_start_daemon, MHD_get_connection_info and MHD_get_daemon_info are
   variadic: Swift cannot call them, so the MicroHTTP module calls these
   static inline wrappers, which take plain parameters. */

/* Result codes of gpb_mhd_start_daemon (besides the daemon pointer). */
#define GPB_MHD_START_OK 0
#define GPB_MHD_START_BAD_HOST 1
#define GPB_MHD_START_FAILED 2

/* Wraps MHD_start_daemon. `host` is a numeric IPv4 or IPv6 address (no name
   resolution). Options with value 0 are set explicitly anyway, except
   per_ip_connection_limit, which is only passed when > 0 (0 = unlimited).
   On failure returns NULL, sets *result and *saved_errno (errno right after the
   failed call: usually EADDRINUSE or EACCES for a bind failure). */
static inline struct MHD_Daemon *
gpb_mhd_start_daemon (unsigned int flags,
                      const char *host,
                      uint16_t port,
                      unsigned int thread_pool_size,
                      unsigned int connection_limit,
                      unsigned int per_ip_connection_limit,
                      unsigned int connection_timeout_seconds,
                      size_t connection_memory_limit,
                      MHD_AccessHandlerCallback handler,
                      void *handler_cls,
                      MHD_RequestCompletedCallback completed,
                      void *completed_cls,
                      int *result,
                      int *saved_errno)
{
  struct sockaddr_in v4;
  struct sockaddr_in6 v6;
  const struct sockaddr *addr;
  struct MHD_Daemon *daemon;

  memset (&v4, 0, sizeof (v4));
  memset (&v6, 0, sizeof (v6));
  *saved_errno = 0;
  if (1 == inet_pton (AF_INET, host, &v4.sin_addr))
  {
    v4.sin_family = AF_INET;
    v4.sin_port = htons (port);
    addr = (const struct sockaddr *) &v4;
  }
  else if (1 == inet_pton (AF_INET6, host, &v6.sin6_addr))
  {
    v6.sin6_family = AF_INET6;
    v6.sin6_port = htons (port);
    addr = (const struct sockaddr *) &v6;
    flags |= MHD_USE_IPv6;
  }
  else
  {
    *result = GPB_MHD_START_BAD_HOST;
    return NULL;
  }
  /* MHD binds inside MHD_start_daemon: `addr` only needs to live until it returns. */
  errno = 0;
  if (per_ip_connection_limit > 0)
    daemon = MHD_start_daemon (flags, port, NULL, NULL, handler, handler_cls,
                               MHD_OPTION_SOCK_ADDR, addr,
                               MHD_OPTION_THREAD_POOL_SIZE, thread_pool_size,
                               MHD_OPTION_CONNECTION_LIMIT, connection_limit,
                               MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip_connection_limit,
                               MHD_OPTION_CONNECTION_TIMEOUT, connection_timeout_seconds,
                               MHD_OPTION_CONNECTION_MEMORY_LIMIT, connection_memory_limit,
                               MHD_OPTION_NOTIFY_COMPLETED, completed, completed_cls,
                               MHD_OPTION_END);
  else
    daemon = MHD_start_daemon (flags, port, NULL, NULL, handler, handler_cls,
                               MHD_OPTION_SOCK_ADDR, addr,
                               MHD_OPTION_THREAD_POOL_SIZE, thread_pool_size,
                               MHD_OPTION_CONNECTION_LIMIT, connection_limit,
                               MHD_OPTION_CONNECTION_TIMEOUT, connection_timeout_seconds,
                               MHD_OPTION_CONNECTION_MEMORY_LIMIT, connection_memory_limit,
                               MHD_OPTION_NOTIFY_COMPLETED, completed, completed_cls,
                               MHD_OPTION_END);
  if (NULL == daemon)
  {
    *saved_errno = errno;
    *result = GPB_MHD_START_FAILED;
    return NULL;
  }
  *result = GPB_MHD_START_OK;
  return daemon;
}

/* Wraps MHD_get_daemon_info(MHD_DAEMON_INFO_BIND_PORT): the actually bound port, 0 if unknown. */
static inline uint16_t
gpb_mhd_bind_port (struct MHD_Daemon *daemon)
{
  const union MHD_DaemonInfo *info = MHD_get_daemon_info (daemon, MHD_DAEMON_INFO_BIND_PORT);
  return (NULL == info) ? 0 : info->port;
}

/* Wraps MHD_get_connection_info(MHD_CONNECTION_INFO_CLIENT_ADDRESS): writes the
   numeric client address (no port) into buf; returns 1 on success, 0 otherwise.
   IPv4 is formatted here, as inet_ntop does but without its sprintf (a cost on
   every request); IPv6 goes through inet_ntop. */
static inline int
gpb_mhd_client_address (struct MHD_Connection *connection, char *buf, size_t len)
{
  const union MHD_ConnectionInfo *info =
    MHD_get_connection_info (connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  if ( (NULL == info) || (NULL == info->client_addr) || (0 == len) )
    return 0;
  if (AF_INET == info->client_addr->sa_family)
  {
    const unsigned char *octets = (const unsigned char *)
      &((const struct sockaddr_in *) info->client_addr)->sin_addr.s_addr;
    size_t at = 0;
    if (len < INET_ADDRSTRLEN)
      return 0;
    for (int i = 0; i < 4; i++)
    {
      unsigned int octet = octets[i];
      if (octet >= 100)
        buf[at++] = (char) ('0' + octet / 100);
      if (octet >= 10)
        buf[at++] = (char) ('0' + octet / 10 % 10);
      buf[at++] = (char) ('0' + octet % 10);
      buf[at++] = (i < 3) ? '.' : '\0';
    }
    return 1;
  }
  if (AF_INET6 == info->client_addr->sa_family)
    return NULL != inet_ntop (AF_INET6,
                              &((const struct sockaddr_in6 *) info->client_addr)->sin6_addr,
                              buf, (socklen_t) len);
  return 0;
}

/* Closes the listen socket MHD_quiesce_daemon hands back (the caller owns it). */
static inline void
gpb_mhd_close_socket (MHD_socket sock)
{
  if (MHD_INVALID_SOCKET != sock)
    (void) close (sock);
}

#endif
