#define ESC_LOG_MODULE "frames"
/* Records and replays the frames the aggregator reads, so its per-message path can be measured
 * without the rest of the pipeline (bench/aggregator/replay.py drives it).
 *   agg_frames capture ENDPOINT FILE MAX IDLE_MS: binds a PULL socket on ENDPOINT (what the
 *     classifiers push to: bus.aggregate) and appends each frame to FILE as a 4-byte
 *     little-endian length and the bytes; stops after MAX frames, or IDLE_MS without one once
 *     the first has arrived.
 *   agg_frames send ENDPOINT FILE: connects a PUSH socket to ENDPOINT and sends every frame of
 *     FILE in order (blocking at the high-water mark), then lingers until they are delivered.
 *   agg_frames count FILE: counts the messages in FILE's frames (a batch frame holds several).
 * Each prints its count on stdout (frames; for count, messages). Single-threaded. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "escucha/esc_bus.h"
#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_msg.h"
#include "escucha/esc_util.h"

#define F_HWM 100000
#define F_FRAME_MAX (16u << 20)

static int
s_capture(const char *ep, const char *path, int64_t max, int64_t idle_ms)
{
    esc_bus_t *in = esc_bus_new(ESC_BUS_PULL, ep, true, F_HWM);
    FILE *f = fopen(path, "wb");
    struct timespec idle_wait = { 0, 1000000 }; /* 1 ms between polls while nothing comes */
    int64_t n = 0;
    int64_t last = 0;
    int rc = 1;

    if (in == NULL || f == NULL) {
        esc_log_error("cannot open endpoint=%s file=%s", ep, path);
        goto out;
    }
    while (n < max) {
        const void *buf;
        size_t len;
        unsigned char hdr[4];
        esc_rc r = esc_bus_recv(in, &buf, &len, ESC_BUS_DONTWAIT);

        if (r == ESC_RETRY) {
            if (n > 0 && esc_mono_ms() - last > idle_ms) {
                break;
            }
            nanosleep(&idle_wait, NULL);
            continue;
        }
        if (r != ESC_OK) {
            goto out;
        }
        hdr[0] = (unsigned char)(len & 0xff);
        hdr[1] = (unsigned char)((len >> 8) & 0xff);
        hdr[2] = (unsigned char)((len >> 16) & 0xff);
        hdr[3] = (unsigned char)((len >> 24) & 0xff);
        if (fwrite(hdr, 1, 4, f) != 4 || fwrite(buf, 1, len, f) != len) {
            esc_log_errno("write");
            goto out;
        }
        n++;
        last = esc_mono_ms();
    }
    rc = 0;
out:
    if (f != NULL && fclose(f) != 0) {
        rc = 1;
    }
    esc_bus_destroy(&in, 0);
    printf("%lld\n", (long long)n);
    return rc;
}

static int
s_send(const char *ep, const char *path)
{
    esc_bus_t *out = esc_bus_new(ESC_BUS_PUSH, ep, false, F_HWM);
    FILE *f = fopen(path, "rb");
    char *buf = esc_malloc(F_FRAME_MAX);
    int64_t n = 0;
    int rc = 1;

    if (out == NULL || f == NULL) {
        esc_log_error("cannot open endpoint=%s file=%s", ep, path);
        goto out;
    }
    for (;;) {
        unsigned char hdr[4];
        size_t len;

        if (fread(hdr, 1, 4, f) != 4) {
            break;
        }
        len = (size_t)hdr[0] | ((size_t)hdr[1] << 8) | ((size_t)hdr[2] << 16)
              | ((size_t)hdr[3] << 24);
        if (len > F_FRAME_MAX || fread(buf, 1, len, f) != len) {
            esc_log_error("truncated frame file=%s frame=%lld", path, (long long)n);
            goto out;
        }
        if (esc_bus_send(out, buf, len, 0) != ESC_OK) {
            goto out;
        }
        n++;
    }
    rc = 0;
out:
    if (f != NULL) {
        fclose(f);
    }
    esc_bus_destroy(&out, 60000);
    esc_free(buf);
    printf("%lld\n", (long long)n);
    return rc;
}

static int
s_count(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = esc_malloc(F_FRAME_MAX);
    int64_t n = 0;
    int rc = 1;

    if (f == NULL) {
        esc_log_error("cannot open file=%s", path);
        goto out;
    }
    for (;;) {
        unsigned char hdr[4];
        size_t len;
        struct esc_batch_iter it;
        struct esc_error err;
        const void *msg;
        size_t mlen;

        if (fread(hdr, 1, 4, f) != 4) {
            break;
        }
        len = (size_t)hdr[0] | ((size_t)hdr[1] << 8) | ((size_t)hdr[2] << 16)
              | ((size_t)hdr[3] << 24);
        if (len > F_FRAME_MAX || fread(buf, 1, len, f) != len) {
            esc_log_error("truncated frame file=%s", path);
            goto out;
        }
        if (esc_batch_open(&it, buf, len, &err) != ESC_OK) {
            continue;
        }
        for (;;) {
            esc_rc r = esc_batch_next(&it, &msg, &mlen, &err);

            if (r == ESC_CLOSED) {
                break;
            }
            n++;
        }
    }
    rc = 0;
out:
    if (f != NULL) {
        fclose(f);
    }
    esc_free(buf);
    printf("%lld\n", (long long)n);
    return rc;
}

int
main(int argc, char **argv)
{
    int64_t max = 0;
    int64_t idle = 0;
    int rc;

    esc_log_init("agg_frames", ESC_LOG_INFO);
    if (argc == 6 && strcmp(argv[1], "capture") == 0
        && esc_parse_i64(argv[4], 1, INT64_MAX, &max) == 0
        && esc_parse_i64(argv[5], 1, INT64_MAX, &idle) == 0) {
        rc = s_capture(argv[2], argv[3], max, idle);
    }
    else if (argc == 3 && strcmp(argv[1], "count") == 0) {
        rc = s_count(argv[2]);
    }
    else if (argc == 4 && strcmp(argv[1], "send") == 0) {
        rc = s_send(argv[2], argv[3]);
    }
    else {
        fprintf(stderr, "usage: agg_frames capture ENDPOINT FILE MAX IDLE_MS\n"
                        "       agg_frames send ENDPOINT FILE\n"
                        "       agg_frames count FILE\n");
        return 2;
    }
    esc_bus_ctx_term();
    return rc;
}
