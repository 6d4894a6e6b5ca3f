#define ESC_LOG_MODULE "bench"
/* Helpers shared by the C micro-benchmarks (bench_util.h): loading a JSONL corpus, clocks, the
 * timed stage loop and JSON output with the machine description. Throughput is reported on CPU
 * time (CLOCK_PROCESS_CPUTIME_ID) so that the figure is per core and does not depend much on
 * what else the shared machine is doing; the wall-clock rate is printed beside it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"

#include "bench_util.h"

int
bench_lines_load(struct bench_lines *l, const char *path, size_t max)
{
    FILE *f = fopen(path, "rb");
    size_t cap = 1024 * 1024 + 2;
    char *buf = esc_malloc(cap);
    size_t alloc = 0;

    memset(l, 0, sizeof(*l));
    if (f == NULL) {
        fprintf(stderr, "bench: cannot open %s: %s\n", path, strerror(errno));
        esc_free(buf);
        return -1;
    }
    while (l->n < max && fgets(buf, (int)cap, f) != NULL) {
        size_t n = strlen(buf);

        if (n > 0 && buf[n - 1] != '\n' && !feof(f)) {
            fprintf(stderr, "bench: line too long in %s, stopping there\n", path);
            break;
        }
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) {
            n--;
        }
        if (n == 0) {
            continue;
        }
        if (l->n == alloc) {
            alloc = alloc ? alloc * 2 : 4096;
            l->line = esc_realloc(l->line, alloc * sizeof(*l->line));
            l->len = esc_realloc(l->len, alloc * sizeof(*l->len));
        }
        l->line[l->n] = esc_strndup(buf, n);
        l->len[l->n] = n;
        l->n++;
    }
    esc_free(buf);
    fclose(f);
    if (l->n == 0) {
        fprintf(stderr, "bench: no lines in %s\n", path);
        return -1;
    }
    return 0;
}

void
bench_lines_fini(struct bench_lines *l)
{
    size_t i;

    for (i = 0; i < l->n; i++) {
        esc_free(l->line[i]);
    }
    esc_free(l->line);
    esc_free(l->len);
    memset(l, 0, sizeof(*l));
}

double
bench_cpu_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double
bench_wall_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

long
bench_vm_hwm_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = 0;

    if (f == NULL) {
        return 0;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmHWM:", 6) == 0) {
            int64_t v;
            char *p = line + 6;
            char *end;

            while (*p == ' ' || *p == '\t') {
                p++;
            }
            end = p;
            while (*end >= '0' && *end <= '9') {
                end++;
            }
            *end = '\0';
            if (esc_parse_i64(p, 0, INT64_MAX, &v) == 0) {
                kb = (long)v;
            }
            break;
        }
    }
    fclose(f);
    return kb;
}

void
bench_run(struct bench_result *r, const char *stage, size_t (*fn)(void *ctx, size_t i),
          void *ctx, size_t n, double min_cpu_s, int max_passes)
{
    double c0 = bench_cpu_s();
    double w0 = bench_wall_s();
    int pass = 0;

    memset(r, 0, sizeof(*r));
    r->stage = stage;
    do {
        size_t i;

        for (i = 0; i < n; i++) {
            r->checksum += fn(ctx, i);
        }
        r->posts += n;
        pass++;
    } while (pass < max_passes && bench_cpu_s() - c0 < min_cpu_s);
    r->cpu_s = bench_cpu_s() - c0;
    r->wall_s = bench_wall_s() - w0;
}

void
bench_run_best(struct bench_result *r, const char *stage, size_t (*fn)(void *ctx, size_t i),
               void *ctx, size_t n, double min_cpu_s, int repeat)
{
    struct bench_result cur;
    int k;

    bench_run(r, stage, fn, ctx, n, min_cpu_s, 1000);
    for (k = 1; k < repeat; k++) {
        bench_run(&cur, stage, fn, ctx, n, min_cpu_s, 1000);
        if (bench_rate(&cur) > bench_rate(r)) {
            *r = cur;
        }
    }
}

double
bench_rate(const struct bench_result *r)
{
    return r->cpu_s > 0 ? (double)r->posts / r->cpu_s : 0.0;
}

void
bench_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s != NULL && *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;

        if (c == '"' || c == '\\') {
            fprintf(f, "\\%c", c);
        }
        else if (c < 0x20) {
            fprintf(f, "\\u%04x", c);
        }
        else {
            fputc(c, f);
        }
    }
    fputc('"', f);
}

/* The value after "key<spaces>:" of the first matching line of a /proc file, trimmed. */
static void
s_proc_field(const char *path, const char *key, char *out, size_t outsz)
{
    FILE *f = fopen(path, "r");
    char line[512];
    size_t kl = strlen(key);

    out[0] = '\0';
    if (f == NULL) {
        return;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, key, kl) == 0) {
            char *p = strchr(line, ':');
            size_t n;

            if (p == NULL) {
                continue;
            }
            p++;
            while (*p == ' ' || *p == '\t') {
                p++;
            }
            n = strlen(p);
            while (n > 0 && (p[n - 1] == '\n' || p[n - 1] == ' ')) {
                p[--n] = '\0';
            }
            esc_strlcpy(out, p, outsz);
            break;
        }
    }
    fclose(f);
}

void
bench_json_machine(FILE *f)
{
    char model[256];
    char mem[64];
    char host[256];
    struct utsname u;

    s_proc_field("/proc/cpuinfo", "model name", model, sizeof(model));
    s_proc_field("/proc/meminfo", "MemTotal", mem, sizeof(mem));
    if (gethostname(host, sizeof(host)) != 0) {
        esc_strlcpy(host, "unknown", sizeof(host));
    }
    host[sizeof(host) - 1] = '\0';
    if (uname(&u) != 0) {
        memset(&u, 0, sizeof(u));
    }
    fputs("\"machine\": {\"host\": ", f);
    bench_json_str(f, host);
    fprintf(f, ", \"cores\": %ld, \"cpu_model\": ", sysconf(_SC_NPROCESSORS_ONLN));
    bench_json_str(f, model);
    fputs(", \"mem_total\": ", f);
    bench_json_str(f, mem);
    fputs(", \"kernel\": ", f);
    bench_json_str(f, u.release);
    fputc('}', f);
}

void
bench_json_result(FILE *f, const struct bench_result *r)
{
    double rate = bench_rate(r);

    fputs("{\"stage\": ", f);
    bench_json_str(f, r->stage);
    fprintf(f,
            ", \"posts\": %llu, \"cpu_s\": %.3f, \"wall_s\": %.3f, \"posts_per_s_cpu\": %.0f, "
            "\"ns_per_post_cpu\": %.0f, \"posts_per_s_wall\": %.0f}",
            (unsigned long long)r->posts, r->cpu_s, r->wall_s, rate,
            rate > 0 ? 1e9 / rate : 0.0, r->wall_s > 0 ? (double)r->posts / r->wall_s : 0.0);
}

void
bench_print_result(const char *label, const struct bench_result *r)
{
    double rate = bench_rate(r);

    fprintf(stderr, "  %-34s %12.0f posts/s/core %9.0f ns/post %12.0f posts/s wall\n", label,
            rate, rate > 0 ? 1e9 / rate : 0.0, r->wall_s > 0 ? (double)r->posts / r->wall_s : 0.0);
}

const char *
bench_opt(int argc, char **argv, const char *name)
{
    int i;

    for (i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], name) == 0) {
            return argv[i + 1];
        }
    }
    return NULL;
}

int64_t
bench_opt_i64(int argc, char **argv, const char *name, int64_t def, int64_t min, int64_t max)
{
    const char *v = bench_opt(argc, argv, name);
    int64_t out;

    if (v == NULL) {
        return def;
    }
    if (esc_parse_i64(v, min, max, &out) != 0) {
        fprintf(stderr, "bench: %s needs an integer in %lld..%lld\n", name, (long long)min,
                (long long)max);
        exit(2);
    }
    return out;
}

double
bench_opt_f(int argc, char **argv, const char *name, double def)
{
    const char *v = bench_opt(argc, argv, name);
    char *end;
    double out;

    if (v == NULL) {
        return def;
    }
    out = strtod(v, &end);
    if (*end != '\0' || !(out >= 0)) {
        fprintf(stderr, "bench: %s needs a non-negative number\n", name);
        exit(2);
    }
    return out;
}
