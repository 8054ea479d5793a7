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
#include <stdlib.h>
#include <gnutls/gnutls.h>
#include <gnutls/abstract.h>
#include <microhttpd.h>

/* MHD_start_daemon, MHD_get_connection_info and MHD_get_daemon_info are
   variadic: Swift cannot call them, so the MicroHTTP module calls these
   static inline wrappers, which take plain parameters. GnuTLS (which
   libmicrohttpd is built with) is here for HTTPS certificates. */

/* Result codes of gpb_mhd_start_daemon (besides the daemon pointer). */
#define GPB_MHD_START_OK 0
#define GPB_MHD_START_BAD_HOST 1
#define GPB_MHD_START_FAILED 2

/* Everything gpb_mhd_start_daemon passes to MHD_start_daemon. Zero limits are
   passed as they are, except per_ip_connection_limit (0 = unlimited, not passed).
   tls_priorities non-NULL turns TLS on (MHD_USE_TLS) with tls_certificate as
   MHD_OPTION_HTTPS_CERT_CALLBACK, so the certificate can change while serving. */
struct gpb_mhd_settings
{
  unsigned int flags;
  const char *host;
  uint16_t port;
  unsigned int thread_pool_size;
  unsigned int connection_limit;
  unsigned int per_ip_connection_limit;
  unsigned int connection_timeout_seconds;
  size_t connection_memory_limit;
  MHD_AccessHandlerCallback handler;
  MHD_RequestCompletedCallback completed;
  MHD_NotifyConnectionCallback notify_connection;
  void *(*uri_log) (void *cls, const char *uri, struct MHD_Connection *connection);
  /* The one cls of every callback above. */
  void *cls;
  const char *tls_priorities;
  gnutls_certificate_retrieve_function2 *tls_certificate;
};

/* Leaves escapes as they are, so the access handler sees the raw path (and raw
   query keys and values, after MHD's '+' to ' '): decoding happens per path
   segment in Swift, where "%2F" and "%00" can be refused instead of routed. */
static inline size_t
gpb_mhd_unescape_nothing (void *cls, struct MHD_Connection *connection, char *value)
{
  (void) cls;
  (void) connection;
  return strlen (value);
}

/* Wraps MHD_start_daemon (through MHD_OPTION_ARRAY). `host` is a numeric IPv4 or
   IPv6 address (no name resolution). On failure returns NULL, sets *result and
   *saved_errno (errno right after the failed call: usually EADDRINUSE or EACCES
   for a bind failure). */
static inline struct MHD_Daemon *
gpb_mhd_start_daemon (const struct gpb_mhd_settings *settings, int *result, int *saved_errno)
{
  struct sockaddr_in v4;
  struct sockaddr_in6 v6;
  const struct sockaddr *addr;
  struct MHD_Daemon *daemon;
  struct MHD_OptionItem options[16];
  unsigned int count = 0;
  unsigned int flags = settings->flags;

  memset (&v4, 0, sizeof (v4));
  memset (&v6, 0, sizeof (v6));
  *saved_errno = 0;
  if (1 == inet_pton (AF_INET, settings->host, &v4.sin_addr))
  {
    v4.sin_family = AF_INET;
    v4.sin_port = htons (settings->port);
    addr = (const struct sockaddr *) &v4;
  }
  else if (1 == inet_pton (AF_INET6, settings->host, &v6.sin6_addr))
  {
    v6.sin6_family = AF_INET6;
    v6.sin6_port = htons (settings->port);
    addr = (const struct sockaddr *) &v6;
    flags |= MHD_USE_IPv6;
  }
  else
  {
    *result = GPB_MHD_START_BAD_HOST;
    return NULL;
  }
#define GPB_OPTION(o, v, p) \
  options[count++] = (struct MHD_OptionItem) { (o), (intptr_t) (v), (void *) (p) }
  GPB_OPTION (MHD_OPTION_SOCK_ADDR, 0, addr);
  GPB_OPTION (MHD_OPTION_THREAD_POOL_SIZE, settings->thread_pool_size, NULL);
  GPB_OPTION (MHD_OPTION_CONNECTION_LIMIT, settings->connection_limit, NULL);
  if (settings->per_ip_connection_limit > 0)
    GPB_OPTION (MHD_OPTION_PER_IP_CONNECTION_LIMIT, settings->per_ip_connection_limit, NULL);
  GPB_OPTION (MHD_OPTION_CONNECTION_TIMEOUT, settings->connection_timeout_seconds, NULL);
  GPB_OPTION (MHD_OPTION_CONNECTION_MEMORY_LIMIT, settings->connection_memory_limit, NULL);
  GPB_OPTION (MHD_OPTION_NOTIFY_COMPLETED, settings->completed, settings->cls);
  GPB_OPTION (MHD_OPTION_NOTIFY_CONNECTION, settings->notify_connection, settings->cls);
  GPB_OPTION (MHD_OPTION_URI_LOG_CALLBACK, settings->uri_log, settings->cls);
  GPB_OPTION (MHD_OPTION_UNESCAPE_CALLBACK, &gpb_mhd_unescape_nothing, NULL);
  if (NULL != settings->tls_priorities)
  {
    flags |= MHD_USE_TLS;
    GPB_OPTION (MHD_OPTION_HTTPS_PRIORITIES, 0, settings->tls_priorities);
    GPB_OPTION (MHD_OPTION_HTTPS_CERT_CALLBACK, 0, settings->tls_certificate);
  }
  GPB_OPTION (MHD_OPTION_END, 0, NULL);
#undef GPB_OPTION
  /* MHD binds inside MHD_start_daemon: `addr` only needs to live until it returns. */
  errno = 0;
  daemon = MHD_start_daemon (flags, settings->port, NULL, NULL, settings->handler, settings->cls,
                             MHD_OPTION_ARRAY, options, MHD_OPTION_END);
  if (NULL == daemon)
  {
    *saved_errno = errno;
    *result = GPB_MHD_START_FAILED;
    return NULL;
  }
  *result = GPB_MHD_START_OK;
  return daemon;
}

/* Wraps MHD_get_connection_info(MHD_CONNECTION_INFO_SOCKET_CONTEXT): what
   MHD_OPTION_NOTIFY_CONNECTION stored for the connection, or NULL. */
static inline void *
gpb_mhd_socket_context (struct MHD_Connection *connection)
{
  const union MHD_ConnectionInfo *info =
    MHD_get_connection_info (connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return (NULL == info) ? NULL : info->socket_context;
}

/* Wraps MHD_get_connection_info(MHD_CONNECTION_INFO_CONNECTION_FD), -1 if unknown. */
static inline int
gpb_mhd_connection_fd (struct MHD_Connection *connection)
{
  const union MHD_ConnectionInfo *info =
    MHD_get_connection_info (connection, MHD_CONNECTION_INFO_CONNECTION_FD);
  return (NULL == info) ? -1 : info->connect_fd;
}

/* Wraps MHD_get_connection_info(MHD_CONNECTION_INFO_GNUTLS_SESSION): NULL without TLS. */
static inline gnutls_session_t
gpb_mhd_tls_session (struct MHD_Connection *connection)
{
  const union MHD_ConnectionInfo *info =
    MHD_get_connection_info (connection, MHD_CONNECTION_INFO_GNUTLS_SESSION);
  return (NULL == info) ? NULL : (gnutls_session_t) info->tls_session;
}

/* A certificate chain and its private key, parsed once from PEM, in the form the
   certificate callback hands to GnuTLS (which never frees or changes them). */
struct gpb_tls_credentials
{
  gnutls_pcert_st certificates[16];
  unsigned int count;
  gnutls_privkey_t key;
};

static inline void
gpb_tls_credentials_free (struct gpb_tls_credentials *credentials)
{
  for (unsigned int i = 0; i < credentials->count; i++)
    gnutls_pcert_deinit (&credentials->certificates[i]);
  if (NULL != credentials->key)
    gnutls_privkey_deinit (credentials->key);
  free (credentials);
}

/* Parses a PEM certificate chain and PEM private key and checks that they belong
   together (as gnutls_certificate_set_x509_key_mem does). Returns NULL and sets
   *error to a GnuTLS error code on failure. */
static inline struct gpb_tls_credentials *
gpb_tls_credentials_load (const char *certificate_pem, size_t certificate_length,
                          const char *key_pem, size_t key_length, int *error)
{
  gnutls_datum_t certificate = { (unsigned char *) certificate_pem, (unsigned int) certificate_length };
  gnutls_datum_t key = { (unsigned char *) key_pem, (unsigned int) key_length };
  gnutls_certificate_credentials_t check;
  struct gpb_tls_credentials *credentials;

  *error = gnutls_certificate_allocate_credentials (&check);
  if (*error < 0)
    return NULL;
  *error = gnutls_certificate_set_x509_key_mem (check, &certificate, &key, GNUTLS_X509_FMT_PEM);
  gnutls_certificate_free_credentials (check);
  if (*error < 0)
    return NULL;
  credentials = calloc (1, sizeof (*credentials));
  if (NULL == credentials)
  {
    *error = GNUTLS_E_MEMORY_ERROR;
    return NULL;
  }
  credentials->count = 16;
  *error = gnutls_pcert_list_import_x509_raw (credentials->certificates, &credentials->count,
                                              &certificate, GNUTLS_X509_FMT_PEM, 0);
  if (*error < 0)
  {
    credentials->count = 0;
    gpb_tls_credentials_free (credentials);
    return NULL;
  }
  *error = gnutls_privkey_init (&credentials->key);
  if (*error >= 0)
    *error = gnutls_privkey_import_x509_raw (credentials->key, &key, GNUTLS_X509_FMT_PEM, NULL, 0);
  if (*error < 0)
  {
    gpb_tls_credentials_free (credentials);
    return NULL;
  }
  *error = 0;
  return credentials;
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
