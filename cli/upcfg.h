#ifndef CLI_UPCFG_H
#define CLI_UPCFG_H

/* The parts of the deployment config `escucha up` decides with, beyond what esc_cfg_load
 * parses: whether the file names a Redis server, each service's metrics address, whether an
 * API is configured. Values from the environment (ESC_<SECTION>_<KEY>) win over the file, as
 * they do in the services. */

#include <stdbool.h>
#include <stddef.h>

#include "escucha/esc_rc.h"

/* The services, in start order (downstream first); they stop in the reverse order. */
enum cli_svc {
    CLI_SVC_NOTIFIER,
    CLI_SVC_AGGREGATOR,
    CLI_SVC_CLASSIFIER,
    CLI_SVC_BROKER,
    CLI_SVC_API,
    CLI_SVC_COLLECTOR,
    CLI_SVC_N,
};

/* "notifier", "aggregator", ...: the config section and the binary's suffix (escucha-<name>). */
const char *cli_svc_name(enum cli_svc svc);

struct cli_upcfg {
    bool redis_named;            /* "redis" has host, port or unix_socket (or the environment
                                    sets ESC_REDIS_HOST/PORT/UNIX_SOCKET) */
    bool has_api;                /* an "api" object: escucha-api is started too */
    bool agg_connect_in;         /* aggregator.connect_in: bus.aggregate is bound elsewhere */
    char metrics[CLI_SVC_N][64]; /* <section>.metrics_listen, "" = off */
    char api_listen[64];         /* api.listen, default 127.0.0.1:8080 */
};

/* Reads those values from the JSON file at path (already validated by esc_cfg_load; a value
 * of the wrong type is left for the service's --check-config to report). Returns ESC_OK, or
 * ESC_INVALID with err set when the file cannot be read or parsed. */
esc_rc cli_upcfg_read(const char *path, struct cli_upcfg *out, struct esc_error *err);

/* Splits "host:port", "tcp://host:port" or ":port" ("*" as host or port allowed; "*" as port
 * gives 0). host gets "" for ":port". Returns 0, or -1 when s has no ":port" or the port is
 * not a number in [0, 65535]. */
int cli_hostport_parse(const char *s, char *host, size_t hostsz, int *port);

#endif
