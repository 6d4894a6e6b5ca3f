#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

/* Helpers shared by the C micro-benchmarks in bench/: corpus loading, CPU and wall clocks, a
 * timed loop that runs one stage over a set of posts until a minimum CPU time has passed, the
 * machine description and JSON output. Not part of escucha; single-threaded. */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Lines of a JSONL file, without their newlines. */
struct bench_lines {
    char **line;   /* owned; each NUL-terminated */
    size_t *len;
    size_t n;
};

/* Reads at most max non-empty lines of path into l. Returns 0, or -1 (printed to stderr). */
int bench_lines_load(struct bench_lines *l, const char *path, size_t max);
void bench_lines_fini(struct bench_lines *l);

/* CPU time of this process (user + system), seconds. */
double bench_cpu_s(void);
/* Monotonic wall clock, seconds. */
double bench_wall_s(void);
/* Peak resident set size of this process (VmHWM), kB; 0 when unknown. */
long bench_vm_hwm_kb(void);

/* One stage's result. */
struct bench_result {
    const char *stage;  /* borrowed */
    uint64_t posts;     /* items processed */
    double cpu_s;
    double wall_s;
    uint64_t checksum;  /* sum of what the stage returned, so the work cannot be skipped */
};

/* Calls fn(ctx, i) for i = 0..n-1, over and over, until at least min_cpu_s of CPU time and at
 * least one full pass are done (and at most max_passes passes). */
void bench_run(struct bench_result *r, const char *stage, size_t (*fn)(void *ctx, size_t i),
               void *ctx, size_t n, double min_cpu_s, int max_passes);

/* Runs bench_run `repeat` times and keeps the fastest (on a shared machine, noise only ever
 * slows a run down). */
void bench_run_best(struct bench_result *r, const char *stage, size_t (*fn)(void *ctx, size_t i),
                    void *ctx, size_t n, double min_cpu_s, int repeat);

/* posts / cpu_s, or 0. */
double bench_rate(const struct bench_result *r);

/* Writes s as a JSON string (with quotes). */
void bench_json_str(FILE *f, const char *s);
/* Writes "machine": {...} (host, cores, CPU model, memory, kernel) without a trailing comma. */
void bench_json_machine(FILE *f);
/* Writes one result as a JSON object (stage, posts, cpu_s, wall_s, posts_per_s_cpu,
 * ns_per_post_cpu, posts_per_s_wall). */
void bench_json_result(FILE *f, const struct bench_result *r);
/* Prints one table row to stderr: stage, posts/s per core, ns/post, wall posts/s. */
void bench_print_result(const char *label, const struct bench_result *r);

/* Parses "--name value" options: returns the value of name in argv, or NULL. */
const char *bench_opt(int argc, char **argv, const char *name);
/* Integer option with a default; exits 2 on a malformed value. */
int64_t bench_opt_i64(int argc, char **argv, const char *name, int64_t def, int64_t min,
                      int64_t max);
/* Number option with a default; exits 2 on a malformed value. */
double bench_opt_f(int argc, char **argv, const char *name, double def);

#endif
