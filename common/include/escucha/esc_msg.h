#ifndef ESC_MSG_H
#define ESC_MSG_H

/* Bus messages: msgpack maps with a schema version `v`, `type`, `id` and `ts` as required keys.
 * Decoding happens once, at the edge, into the plain structs below; nothing else in escucha
 * touches msgpack. Decoders ignore unknown keys, reject a missing/mistyped required key, a
 * truncated or trailing-garbage buffer and anything over ESC_MSG_MAX with ESC_INVALID and a
 * reason in err. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "esc_rc.h"

#define ESC_MSG_VERSION 1
#define ESC_MSG_MAX (1024 * 1024)    /* largest encoded message accepted, bytes */
#define ESC_POST_TEXT_MAX (64 * 1024) /* longest post text kept, bytes (longer is rejected) */
#define ESC_POST_LIST_MAX 256         /* most hashtags / mentions / topics in one post */

enum esc_msg_type {
    ESC_MSG_UNKNOWN = 0,
    ESC_MSG_POST,       /* "post": collector -> classifier */
    ESC_MSG_CLASSIFIED, /* "classified": classifier -> aggregator */
    ESC_MSG_ALERT,      /* "alert": aggregator -> notifier */
};

/* A social media post, as every stage sees it. All strings are caller-owned (freed by
 * esc_post_fini) and NUL-terminated; optional strings may be NULL. */
struct esc_post {
    char *id;              /* platform's id, kept as a string (required) */
    char *platform;        /* "mastodon", "bluesky", "jsonl", ... (required) */
    char *source;          /* name of the configured source that produced it */
    char *author;          /* author handle, e.g. "@ana@mastodon.social" */
    char *author_name;     /* display name */
    int64_t followers;     /* author's follower count, 0 when unknown */
    char *text;            /* plain text, UTF-8 (required, may be "") */
    char *lang;            /* language hint from the platform, or NULL */
    char *url;             /* canonical link to the post, or NULL */
    int64_t created_at;    /* event time, Unix ms (required) */
    int64_t ingested_at;   /* when the collector accepted it, Unix ms */
    int64_t likes;         /* engagement counts, 0 when unknown */
    int64_t reposts;
    int64_t replies;
    char **hashtags;       /* without '#', as the platform gave them */
    size_t n_hashtags;
    char **mentions;       /* without '@' */
    size_t n_mentions;
    char *ack_ref;         /* "<collector id>:<seq>" from a collector with a journal, carried to
                              the aggregator, which acknowledges it once the post is counted
                              (docs/delivery.md); NULL when none */
    /* Set by the classifier (type "classified" only). */
    char **topics;         /* matched topic keys "team/topic" */
    size_t n_topics;
    char *language;        /* detected language (ISO 639-1) or "und" */
    double sentiment;      /* polarity in [-1, 1] */
};

/* A spike alert for one topic. Strings caller-owned, freed by esc_alert_fini. */
struct esc_alert {
    char *id;            /* unique: "team/topic/<window_start>" */
    char *team;          /* team id */
    char *topic;         /* topic id */
    char *topic_name;    /* human name of the topic */
    char *kind;          /* "spike" when it starts, "ended" when the topic is back to normal */
    int64_t window_start; /* event-time window that spiked, Unix ms, [start, end) */
    int64_t window_end;
    int64_t observed;    /* posts in the window */
    double expected;     /* posts expected in a window of that length (baseline) */
    double score;        /* significance: -log10(p) (poisson) or z (zscore), docs/aggregator.md */
    int64_t ts;          /* when the alert was raised, Unix ms */
    char **samples;      /* up to a few sample post texts */
    size_t n_samples;
    char **sample_authors; /* author handle of each sample (same order; may be shorter) */
    size_t n_sample_authors;
    char **sample_urls;  /* link of each sample (same order; "" when none) */
    size_t n_sample_urls;
    char **terms;        /* top terms of the window that spiked, most frequent first */
    size_t n_terms;
    char *query;         /* the topic's query or keywords as text, for the reader */
};

void esc_post_init(struct esc_post *p);
void esc_post_fini(struct esc_post *p);
void esc_alert_init(struct esc_alert *a);
void esc_alert_fini(struct esc_alert *a);

/* Appends a copy of s to a string list (list, n) capped at ESC_POST_LIST_MAX. Returns 0, or -1
 * when the list is full. */
int esc_strlist_push(char ***list, size_t *n, const char *s);
void esc_strlist_free(char ***list, size_t *n);

/* Encodes p as a "post" (or "classified" when `classified` is non-zero) message.
 * Returns a caller-owned buffer (esc_free) and sets *len. */
char *esc_post_encode(const struct esc_post *p, int classified, size_t *len);

/* Encodes p as esc_post_encode does, into *buf: a buffer of *cap bytes kept by the caller from
 * one message to the next (NULL and 0 at first; grown with esc_realloc when a message needs
 * more; esc_free it at the end), so that a service encoding a message per post allocates
 * nothing once the buffer has grown. Returns the message's length. */
size_t esc_post_encode_reuse(const struct esc_post *p, int classified, char **buf, size_t *cap);
/* Decodes a "post" or "classified" message into out (initialised here; caller must
 * esc_post_fini it whatever the result). *type_out (may be NULL) receives the type.
 * Returns ESC_OK or ESC_INVALID with err filled. */
esc_rc esc_post_decode(const void *buf, size_t len, struct esc_post *out,
                       enum esc_msg_type *type_out, struct esc_error *err);

/* Reusable memory for esc_post_decode_into, for a loop that decodes one post after another
 * (the classifier): the strings and lists of the decoded post live in it, so decoding
 * allocates nothing once it has grown to the largest message seen. */
struct esc_post_buf {
    char *data;  /* strings and lists; owned */
    size_t cap;
    void *objs;  /* the unpacked message; owned */
    size_t objs_cap;
};
void esc_post_buf_init(struct esc_post_buf *b);
void esc_post_buf_fini(struct esc_post_buf *b); /* NULL-safe */
/* As esc_post_decode, but every string and list of out is borrowed from b: out must NOT be
 * esc_post_fini'd, and is valid until the next esc_post_decode_into with b or
 * esc_post_buf_fini(b). On failure out is left empty. */
esc_rc esc_post_decode_into(const void *buf, size_t len, struct esc_post *out,
                            enum esc_msg_type *type_out, struct esc_post_buf *b,
                            struct esc_error *err);

char *esc_alert_encode(const struct esc_alert *a, size_t *len);
esc_rc esc_alert_decode(const void *buf, size_t len, struct esc_alert *out,
                        struct esc_error *err);

/* Reads only the `type` key of a message; ESC_MSG_UNKNOWN when it is not a valid message. */
enum esc_msg_type esc_msg_peek_type(const void *buf, size_t len);

/* Batch frames: several already-encoded messages (posts, classified posts) in one bus frame, a
 * msgpack map {v: 1, type: "batch", msgs: [bin, ...]} where each bin holds one message as it
 * would travel alone (docs/architecture.md). It saves the per-frame costs of every hop; the
 * messages inside are decoded as usual (esc_post_decode, ...). A batch is never larger than
 * ESC_MSG_MAX. Producers keep to these bounds, so a batch adds little latency: */
#define ESC_BATCH_MSGS 64             /* messages per batch, at most */
#define ESC_BATCH_BYTES (64 * 1024)   /* a batch is sent once it would grow beyond this */

/* Builder of one batch frame. Embedded: esc_batch_init / esc_batch_fini. */
struct esc_batch {
    char *data;        /* the frame so far; owned */
    size_t len;        /* bytes used */
    size_t cap;        /* bytes allocated */
    size_t n;          /* messages added */
    size_t first_off;  /* where the first message's bytes start (for a batch of one) */
    size_t first_len;
};
void esc_batch_init(struct esc_batch *b);
void esc_batch_fini(struct esc_batch *b); /* NULL-safe */
/* Empties b for the next frame; keeps its memory. */
void esc_batch_reset(struct esc_batch *b);
/* True when a message of len bytes should not be added to b any more: b is full (ESC_BATCH_MSGS)
 * or would outgrow ESC_BATCH_BYTES. Always false for an empty b (a big message goes alone). */
bool esc_batch_full(const struct esc_batch *b, size_t len);
/* Appends a copy of one encoded message (len <= ESC_MSG_MAX) to b. */
void esc_batch_add(struct esc_batch *b, const void *msg, size_t len);
/* The frame to send: a batch of b's messages, or, when b holds exactly one, that message alone
 * (an ordinary single-message frame). Sets *len (0 and returns NULL when b is empty). Borrowed;
 * valid until b changes. */
const void *esc_batch_frame(struct esc_batch *b, size_t *len);

/* Reads a received frame as a sequence of messages: a batch yields its messages, any other frame
 * yields itself once (single-message frames, and garbage, which the message decoder rejects). */
struct esc_batch_iter {
    const unsigned char *buf; /* the frame; borrowed */
    size_t len;
    size_t off;      /* next element */
    size_t end;      /* end of the msgs array as far as it could be read */
    size_t count;    /* messages the frame announces (1 for a single-message frame) */
    size_t index;    /* index of the message esc_batch_next returned last (0-based) */
    size_t next;     /* index of the next one */
    bool batch;      /* the frame is a batch */
    bool broken;     /* the msgs array ends early: stop at the first unreadable element */
};
/* Opens frame buf (borrowed; must outlive it). Returns ESC_OK, or ESC_INVALID with err filled when
 * buf is a batch whose frame is malformed (over ESC_MSG_MAX, wrong version, no msgs array,
 * trailing bytes, ...): then nothing in it can be trusted and the whole frame is skipped. */
esc_rc esc_batch_open(struct esc_batch_iter *it, const void *buf, size_t len,
                      struct esc_error *err);
/* Yields the next message: ESC_OK with *msg and *len (borrowed from the frame), ESC_INVALID with
 * err naming the index when that element is not a message (not a bin, or the frame is truncated
 * there; it->index is its index), or ESC_CLOSED when there is nothing more. After ESC_INVALID
 * the caller goes on calling: the remaining readable messages are still yielded. */
esc_rc esc_batch_next(struct esc_batch_iter *it, const void **msg, size_t *len,
                      struct esc_error *err);

/* Parses one post in the project's JSON shape (docs/post-format.md) into out (initialised here;
 * caller must esc_post_fini it). `created_at` may be an RFC 3339 string or Unix ms.
 * Returns ESC_OK or ESC_INVALID with err->text naming the field. */
esc_rc esc_post_from_json(const char *json, size_t len, struct esc_post *out,
                          struct esc_error *err);
/* Writes p as one line of JSON in the same shape (classified fields included when set).
 * Returns a caller-owned string. */
char *esc_post_to_json(const struct esc_post *p);
/* Writes a as JSON (the webhook payload). Returns a caller-owned string. */
char *esc_alert_to_json(const struct esc_alert *a);

#endif
