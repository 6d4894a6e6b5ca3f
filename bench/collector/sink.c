#define ESC_LOG_MODULE "sink"
/* The PULL end of the collector benchmark (bench/collector/run_collector.py). It binds --bus
 * (default tcp://127.0.0.1:*), prints "ENDPOINT <endpoint>" on stdout once bound, then receives
 * frames until --posts posts have arrived, or until nothing came for --idle-ms after the first
 * one (or for --start-ms before it). A frame holds one post or a batch of them (esc_batch);
 * each message's type is peeked, anything but a post (or a malformed batch) counts as bad.
 * Then one JSON object goes to stdout: posts, frames, bad, bytes, and the seconds from the
 * first frame to the last. Single-threaded; bounded by the timeouts. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <zmq.h>

#include "escucha/esc_bus.h"
#include "escucha/esc_log.h"
#include "escucha/esc_msg.h"

#include "bench_util.h"

int
main(int argc, char **argv)
{
    const char *endpoint = bench_opt(argc, argv, "--bus");
    int64_t want = bench_opt_i64(argc, argv, "--posts", 0, 0, INT64_MAX);
    int64_t idle_ms = bench_opt_i64(argc, argv, "--idle-ms", 2000, 1, 3600000);
    int64_t start_ms = bench_opt_i64(argc, argv, "--start-ms", 60000, 1, 3600000);
    esc_bus_t *bus;
    zmq_pollitem_t it;
    struct esc_batch_iter bit;
    const void *buf;
    const void *msg;
    size_t len;
    size_t mlen;
    uint64_t posts = 0;
    uint64_t frames = 0;
    uint64_t bad = 0;
    uint64_t bytes = 0;
    double first = 0.0;
    double last = 0.0;
    int n;

    esc_log_init("bench-sink", ESC_LOG_WARN);
    bus = esc_bus_new(ESC_BUS_PULL, endpoint != NULL ? endpoint : "tcp://127.0.0.1:*", true,
                      100000);
    if (bus == NULL) {
        return 1;
    }
    printf("ENDPOINT %s\n", esc_bus_endpoint(bus));
    fflush(stdout);
    for (;;) {
        if (want > 0 && posts >= (uint64_t)want) {
            break;
        }
        it = (zmq_pollitem_t){ esc_bus_zsock(bus), 0, ZMQ_POLLIN, 0 };
        n = zmq_poll(&it, 1, (long)(frames == 0 ? start_ms : idle_ms));
        if (n == 0) {
            break;
        }
        if (n < 0) {
            continue; /* EINTR */
        }
        while (esc_bus_recv(bus, &buf, &len, ESC_BUS_DONTWAIT) == ESC_OK) {
            if (frames == 0) {
                first = bench_wall_s();
            }
            frames++;
            bytes += len;
            if (esc_batch_open(&bit, buf, len, NULL) != ESC_OK) {
                bad++;
                continue;
            }
            while (esc_batch_next(&bit, &msg, &mlen, NULL) != ESC_CLOSED) {
                posts++;
                if (esc_msg_peek_type(msg, mlen) != ESC_MSG_POST) {
                    bad++;
                }
            }
        }
        last = bench_wall_s();
    }
    printf("{\"posts\": %llu, \"frames\": %llu, \"bad\": %llu, \"bytes\": %llu, "
           "\"first_to_last_s\": %.6f}\n",
           (unsigned long long)posts, (unsigned long long)frames, (unsigned long long)bad,
           (unsigned long long)bytes,
           frames > 0 ? last - first : 0.0);
    esc_bus_destroy(&bus, 0);
    esc_bus_ctx_term();
    return 0;
}
