#define ESC_LOG_MODULE "counters"
/* Exactly-once counting with pre-aggregation. A post that matched topics becomes a compact
 * record (16-byte id = BLAKE2b of platform + id, counts, interned strings) in the open batch; a
 * two-generation set of recent ids drops re-deliveries this process already has. A flush
 * freezes the batch and cuts each topic's records into parts (AGG_PART_POSTS). A part is summed
 * into bucket deltas and sent as one EVALSHA of s_script, which checks the part's ids against
 * the topic's seen sets: if some are there it writes nothing and returns them (the part is
 * rebuilt without them and sent again); else it adds the ids, applies the deltas and notes the
 * part in the topic's flush mark, atomically. A part whose reply was lost is thus recognised as
 * applied when re-sent. Acknowledged parts feed the top lists, accumulated in memory and written
 * per topic every top_flush_ms under an idempotency mark, like the alert lists and the processed
 * count. Calls are pipelined and their replies read back (esc_kv_exec_replies); processed goes
 * last. Each call touches one Redis Cluster slot. Batches, top-list tables and their buffers are
 * recycled. Posts are recorded on the caller's thread; with agg_counters_start_thread the
 * flushes run on a flush thread of their own (the frozen batch, the top lists, the script
 * state and the Redis connection are its own until the caller collects the flush), else on the
 * caller's thread too. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "escucha/esc_log.h"
#include "escucha/esc_mem.h"
#include "escucha/esc_util.h"

#include "counters.h"
#include "terms.h"

#define S_LISTS_MAX 1000            /* list pushes waiting for Redis */
#define S_KEY_MAX 320
#define S_ROUND_CALLS 64            /* script calls per pipelined round */
#define S_TOPS_STEP_CALLS 4         /* top-list calls per round when written in slices */
#define S_ROUND_BYTES (8u << 20)    /* argument bytes per round, about */
#define S_TOP_ENTRIES_DEFAULT 250000 /* top-list entries in memory (top_max_entries) */
#define S_PRUNE_KEEP_MIN 8          /* a prune keeps at least this many members per list */
#define S_NONE UINT32_MAX           /* no string */
#define S_LANG_MAX 15
#define S_PLATFORM_MAX 32
#define S_AUTHOR_MAX 200
#define S_TAGS_PER_POST 32
#define S_ID_LEN 16

/* Fixed fields of every bucket hash, in this order. */
enum s_fix {
    F_POSTS = 0,
    F_REACH,
    F_LIKES,
    F_REPOSTS,
    F_REPLIES,
    F_ENGAGEMENT,
    F_POS,
    F_NEU,
    F_NEG,
    F_SENT,
    S_NFIX
};

static const char *const s_fix_names[S_NFIX] = {
    "posts",         "reach",         "likes",         "reposts",       "replies",
    "engagement",    "sentiment_pos", "sentiment_neu", "sentiment_neg", "sentiment_milli",
};
static const char s_res_tag[3] = { 'm', 'h', 'd' };
static const int64_t s_res_s[3] = { 60, 3600, 86400 };
static const char *const s_top_names[4] = { "authors", "hashtags", "terms", "posts" };
static const char *const s_dyn_prefix[2] = { "lang:", "platform:" };

/* The one script of every flush call; ARGV[1] names the kind of call. KEYS/ARGV layouts are
 * documented in docs/aggregator.md ("The flush calls"). */
static const char s_script[] =
    "local kind = ARGV[1]\n"
    "local B = 1000\n"
    "local EXACT = 9007199254740992\n"
    /* Adds deltas[k] to field names[k] of hash key: one HMGET and one HSET per chunk of B
     * fields instead of a HINCRBY per field (top-list scores: ZMSCORE and ZADD alike); a field
     * that is not there yet takes the delta as sent (a decimal integer made by the aggregator),
     * without a round through a Lua number. A sum that a double cannot hold exactly
     * (|v| >= 2^53) falls back to HINCRBY for that field, so counts stay exact. */
    "local function add_hash(key, names, deltas)\n"
    "  local n, c, new = #names, 0, true\n"
    "  while c < n do\n"
    "    local m = math.min(n - c, B)\n"
    "    local cur = redis.call('HMGET', key, unpack(names, c + 1, c + m))\n"
    "    local out = {}\n"
    "    for f = 1, m do\n"
    "      local d = deltas[c + f]\n"
    "      if not cur[f] then\n"
    "        out[#out + 1] = names[c + f]\n"
    "        out[#out + 1] = d\n"
    "      else\n"
    "        new = false\n"
    "        local v = (tonumber(cur[f]) or 0) + tonumber(d)\n"
    "        if v >= EXACT or v <= -EXACT then\n"
    "          redis.call('HINCRBY', key, names[c + f], d)\n"
    "        else\n"
    "          out[#out + 1] = names[c + f]\n"
    "          out[#out + 1] = string.format('%d', v)\n"
    "        end\n"
    "      end\n"
    "    end\n"
    "    if #out > 0 then redis.call('HSET', key, unpack(out)) end\n"
    "    c = c + m\n"
    "  end\n"
    "  return new\n"
    "end\n"
    /* A bucket's row: adds the deltas at ARGV[di..] to the n fields named at ARGV[ni..] of hash
     * key, straight from ARGV (no tables of names and deltas; a field not there yet takes the
     * delta as sent); a "0" delta is left alone, except that a new bucket gets the six classic
     * fields (named first) even at zero. True when the key had none of the fields (a new
     * bucket: its TTL is set then, once). One table of HSET arguments serves every row. */
    "local out = {}\n"
    "local function add_row(key, ni, di, n)\n"
    "  local c, new = 0, true\n"
    "  while c < n do\n"
    "    local m = math.min(n - c, B)\n"
    "    local cur = redis.call('HMGET', key, unpack(ARGV, ni + c, ni + c + m - 1))\n"
    "    local o = 0\n"
    "    for f = 1, m do\n"
    "      local x, d = cur[f], ARGV[di + c + f - 1]\n"
    "      if not x then\n"
    "        if d ~= '0' or c + f <= 6 then\n"
    "          out[o + 1], out[o + 2] = ARGV[ni + c + f - 1], d\n"
    "          o = o + 2\n"
    "        end\n"
    "      else\n"
    "        new = false\n"
    "        if d ~= '0' then\n"
    "          local v = (tonumber(x) or 0) + tonumber(d)\n"
    "          if v >= EXACT or v <= -EXACT then\n"
    "            redis.call('HINCRBY', key, ARGV[ni + c + f - 1], d)\n"
    "          else\n"
    "            out[o + 1], out[o + 2] = ARGV[ni + c + f - 1], string.format('%d', v)\n"
    "            o = o + 2\n"
    "          end\n"
    "        end\n"
    "      end\n"
    "    end\n"
    "    if o > 0 then redis.call('HSET', key, unpack(out, 1, o)) end\n"
    "    c = c + m\n"
    "  end\n"
    "  return new\n"
    "end\n"
    "if kind == 'T' then\n"
    "  local ttl_seen, mfield, seq, part = ARGV[2], ARGV[3], ARGV[4], ARGV[5]\n"
    "  local ng = tonumber(ARGV[6])\n"
    "  local i, pos = 7, 0\n"
    "  local groups, dups = {}, {}\n"
    "  for g = 1, ng do\n"
    "    local key, n = ARGV[i], tonumber(ARGV[i + 1])\n"
    "    i = i + 2\n"
    "    groups[g] = i\n"
    "    local c = 0\n"
    "    while c < n do\n"
    "      local m = math.min(n - c, B)\n"
    "      local r = redis.call('SMISMEMBER', key, unpack(ARGV, i + c, i + c + m - 1))\n"
    "      for k = 1, m do\n"
    "        if r[k] == 1 then dups[#dups + 1] = pos + c + k - 1 end\n"
    "      end\n"
    "      c = c + m\n"
    "    end\n"
    "    i = i + n\n"
    "    pos = pos + n\n"
    "  end\n"
    "  local m = redis.call('HGET', KEYS[2], mfield)\n"
    "  local mine = m and string.sub(m, 1, #seq + 1) == seq .. ':'\n"
    "  if #dups > 0 then\n"
    "    if #dups == pos and mine and string.find(',' .. string.sub(m, #seq + 2) .. ',',\n"
    "                                          ',' .. part .. ',', 1, true) then\n"
    "      return -1\n"
    "    end\n"
    "    return dups\n"
    "  end\n"
    "  for g = 1, ng do\n"
    "    local s = groups[g]\n"
    "    local key, n = ARGV[s - 2], tonumber(ARGV[s - 1])\n"
    "    local c = 0\n"
    "    while c < n do\n"
    "      local k = math.min(n - c, B)\n"
    "      redis.call('SADD', key, unpack(ARGV, s + c, s + c + k - 1))\n"
    "      c = c + k\n"
    "    end\n"
    "    redis.call('EXPIRE', key, ttl_seen)\n"
    "  end\n"
    "  local nf = tonumber(ARGV[i])\n"
    "  local ni = i + 1\n"
    "  i = ni + nf\n"
    "  local nc = tonumber(ARGV[i])\n"
    "  i = i + 1\n"
    "  for c = 1, nc do\n"
    "    local key, ttl = ARGV[i], tonumber(ARGV[i + 1])\n"
    "    if add_row(key, ni, i + 2, nf) and ttl > 0 then redis.call('EXPIRE', key, ttl) end\n"
    "    i = i + 2 + nf\n"
    "  end\n"
    "  if mine then m = m .. ',' .. part else m = seq .. ':' .. part end\n"
    "  redis.call('HSET', KEYS[2], mfield, m)\n"
    "  redis.call('EXPIRE', KEYS[2], 604800)\n"
    "  return pos\n"
    "end\n"
    "local done = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0')\n"
    "if done >= tonumber(ARGV[3]) then return 0 end\n"
    "if kind == 'P' then\n"
    "  redis.call('INCRBY', KEYS[1], ARGV[4])\n"
    "elseif kind == 'L' then\n"
    "  for i = 5, #ARGV do redis.call('LPUSH', KEYS[1], ARGV[i]) end\n"
    "  redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[4]) - 1)\n"
    "else\n"
    "  local post_pfx = ARGV[4]\n"
    "  local nz = tonumber(ARGV[5])\n"
    "  local i = 6\n"
    "  for z = 1, nz do\n"
    "    local key, info = ARGV[i], ARGV[i + 1]\n"
    "    local ttl, keep, nm = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3]), "
    "tonumber(ARGV[i + 4])\n"
    "    i = i + 5\n"
    "    local stride = info ~= '' and 5 or 2\n"
    "    local c = 0\n"
    "    while c < nm do\n"
    "      local m = math.min(nm - c, B)\n"
    "      local names, zargs = {}, {}\n"
    "      for k = 1, m do names[k] = ARGV[i + stride * (c + k - 1)] end\n"
    "      local cur = redis.call('ZMSCORE', key, unpack(names))\n"
    "      local inames, ideltas = {}, {}\n"
    "      for k = 1, m do\n"
    "        local at = i + stride * (c + k - 1)\n"
    "        if cur[k] then\n"
    "          zargs[2 * k - 1] = tonumber(cur[k]) + tonumber(ARGV[at + 1])\n"
    "        else\n"
    "          zargs[2 * k - 1] = ARGV[at + 1]\n"
    "        end\n"
    "        zargs[2 * k] = names[k]\n"
    "        if stride == 5 then\n"
    "          local f = #inames\n"
    "          inames[f + 1], ideltas[f + 1] = 'posts:' .. names[k], ARGV[at + 2]\n"
    "          inames[f + 2], ideltas[f + 2] = 'reach:' .. names[k], ARGV[at + 3]\n"
    "          inames[f + 3], ideltas[f + 3] = 'engagement:' .. names[k], ARGV[at + 4]\n"
    "        end\n"
    "      end\n"
    "      redis.call('ZADD', key, unpack(zargs))\n"
    "      if stride == 5 then add_hash(info, inames, ideltas) end\n"
    "      c = c + m\n"
    "    end\n"
    "    i = i + stride * nm\n"
    "    local card = redis.call('ZCARD', key)\n"
    "    if card > 2 * keep then\n"
    "      local drop = card - keep\n"
    "      if info ~= '' then\n"
    /* the dropped authors' fields go in one HDEL per B fields, not one per author */
    "        local gone = redis.call('ZRANGE', key, 0, drop - 1)\n"
    "        local hf = {}\n"
    "        for k, g in ipairs(gone) do\n"
    "          hf[3 * k - 2], hf[3 * k - 1], hf[3 * k] = 'posts:' .. g, 'reach:' .. g, "
    "'engagement:' .. g\n"
    "        end\n"
    "        local c = 0\n"
    "        while c < #hf do\n"
    "          local m = math.min(#hf - c, B)\n"
    "          redis.call('HDEL', info, unpack(hf, c + 1, c + m))\n"
    "          c = c + m\n"
    "        end\n"
    "      end\n"
    "      redis.call('ZREMRANGEBYRANK', key, 0, drop - 1)\n"
    "    end\n"
    "    redis.call('EXPIRE', key, ttl)\n"
    "    if info ~= '' then redis.call('EXPIRE', info, ttl) end\n"
    "  end\n"
    "  local np = tonumber(ARGV[i])\n"
    "  i = i + 1\n"
    /* top posts, grouped by list: one look at the list's lowest score, one ZADD, one trim */
    "  local order, byk = {}, {}\n"
    "  for p = 1, np do\n"
    "    local key, nf = ARGV[i], tonumber(ARGV[i + 5])\n"
    "    local g = byk[key]\n"
    "    if not g then\n"
    "      g = { ttl = tonumber(ARGV[i + 1]), keep = tonumber(ARGV[i + 2]), c = {} }\n"
    "      byk[key] = g\n"
    "      order[#order + 1] = key\n"
    "    end\n"
    "    g.c[#g.c + 1] = { ARGV[i + 3], tonumber(ARGV[i + 4]), i + 6, nf }\n"
    "    i = i + 6 + 2 * nf\n"
    "  end\n"
    "  for _, key in ipairs(order) do\n"
    "    local g = byk[key]\n"
    "    local card = redis.call('ZCARD', key)\n"
    "    local low = nil\n"
    "    if card >= g.keep then\n"
    "      low = tonumber(redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2])\n"
    "    end\n"
    "    local zargs = {}\n"
    "    for _, c in ipairs(g.c) do\n"
    "      if low == nil or c[2] > low then\n"
    "        zargs[#zargs + 1] = c[2]\n"
    "        zargs[#zargs + 1] = c[1]\n"
    "        local h = post_pfx .. c[1]\n"
    "        redis.call('HSET', h, unpack(ARGV, c[3], c[3] + 2 * c[4] - 1))\n"
    "        redis.call('EXPIRE', h, g.ttl)\n"
    "      end\n"
    "    end\n"
    "    if #zargs > 0 then\n"
    "      redis.call('ZADD', key, unpack(zargs))\n"
    "      card = redis.call('ZCARD', key)\n"
    "      if card > g.keep then\n"
    "        local gone = redis.call('ZRANGE', key, 0, card - g.keep - 1)\n"
    "        local dk = {}\n"
    "        for k, m in ipairs(gone) do dk[k] = post_pfx .. m end\n"
    "        redis.call('DEL', unpack(dk))\n"
    "        redis.call('ZREMRANGEBYRANK', key, 0, card - g.keep - 1)\n"
    "      end\n"
    "      redis.call('EXPIRE', key, g.ttl)\n"
    "    end\n"
    "  end\n"
    "end\n"
    "redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])\n"
    "redis.call('EXPIRE', KEYS[2], 604800)\n"
    "return 1\n";
/* ---- small containers ------------------------------------------------------------------ */

/* Grows the array *p of elements of size elem so that it holds need; returns the new array. */
static void *
s_grow(void *p, size_t *cap, size_t need, size_t elem)
{
    size_t c = *cap;

    if (need <= c) {
        return p;
    }
    c = c < 16 ? 16 : c;
    while (c < need) {
        c *= 2;
    }
    *cap = c;
    return esc_realloc(p, c * elem);
}

static uint64_t
s_mix(uint64_t x)
{
    /* splitmix64 finaliser: spreads keys built from small integers over the table */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

/* Hash of len bytes, eight at a time (a byte-wise FNV costs a multiply per byte, and every
 * term of every post is hashed), finished by s_mix so that the low bits are spread. */
static uint64_t
s_hash_bytes(const char *s, size_t len)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ len;
    uint64_t w;

    while (len >= 8) {
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
        s += 8;
        len -= 8;
    }
    if (len > 0) {
        w = 0;
        memcpy(&w, s, len);
        h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
    }
    return s_mix(h);
}

/* s_hash_bytes of len bytes at s, which has at least (len & ~7) + 8 readable bytes: the last
 * partial word is loaded whole and masked (copying its bytes one by one into a zeroed word
 * and then loading the word costs a store-forwarding stall on every term). Same value. */
static uint64_t
s_hash_bytes_wide(const char *s, size_t len)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ len;
    uint64_t w;

    while (len >= 8) {
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
        s += 8;
        len -= 8;
    }
    if (len > 0) {
        memcpy(&w, s, 8);
        w &= ~0ULL >> (64 - 8 * len);
        h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
    }
    return s_mix(h);
#else
    return s_hash_bytes(s, len);
#endif
}

/* Map from a non-zero 64-bit key to a 32-bit value; open addressing, linear probing, key and
 * value side by side (one cache line per probe). Keys are never removed one by one;
 * s_map_clear empties it in time proportional to its size. */
struct s_slot {
    uint64_t key; /* 0 = empty slot */
    uint32_t val;
};

struct s_map {
    struct s_slot *slots;
    uint32_t *used; /* occupied slots, for s_map_clear */
    size_t cap;     /* power of two */
    size_t n;
};

static void
s_map_init(struct s_map *m)
{
    m->cap = 64;
    m->n = 0;
    m->slots = esc_calloc(m->cap, sizeof(*m->slots));
    m->used = esc_malloc(m->cap * sizeof(*m->used));
}

static void
s_map_fini(struct s_map *m)
{
    ESC_FREE(m->slots);
    ESC_FREE(m->used);
    m->cap = 0;
    m->n = 0;
}

static void
s_map_clear(struct s_map *m)
{
    size_t i;

    if (m->n * 8 < m->cap) {
        for (i = 0; i < m->n; i++) {
            m->slots[m->used[i]].key = 0;
        }
    }
    else {
        memset(m->slots, 0, m->cap * sizeof(*m->slots));
    }
    m->n = 0;
}

static size_t
s_map_slot(const struct s_map *m, uint64_t key)
{
    size_t i = (size_t)s_mix(key) & (m->cap - 1);

    while (m->slots[i].key != 0 && m->slots[i].key != key) {
        i = (i + 1) & (m->cap - 1);
    }
    return i;
}

static void
s_map_rehash(struct s_map *m)
{
    struct s_map n;
    size_t i;

    n.cap = m->cap * 2;
    n.n = 0;
    n.slots = esc_calloc(n.cap, sizeof(*n.slots));
    n.used = esc_malloc(n.cap * sizeof(*n.used));
    for (i = 0; i < m->n; i++) {
        size_t to = s_map_slot(&n, m->slots[m->used[i]].key);

        n.slots[to] = m->slots[m->used[i]];
        n.used[n.n++] = (uint32_t)to;
    }
    s_map_fini(m);
    *m = n;
}

/* Returns the value slot of key, inserting it with value v when absent (*found tells which). */
static uint32_t *
s_map_put(struct s_map *m, uint64_t key, uint32_t v, int *found)
{
    size_t i;

    ESC_ASSERT(key != 0);
    if ((m->n + 1) * 2 > m->cap) {
        s_map_rehash(m);
    }
    i = s_map_slot(m, key);
    if (m->slots[i].key == key) {
        *found = 1;
        return &m->slots[i].val;
    }
    *found = 0;
    m->slots[i].key = key;
    m->slots[i].val = v;
    m->used[m->n++] = (uint32_t)i;
    return &m->slots[i].val;
}

/* Set of 16-byte ids (all-zero is the empty slot; s_post_id never produces it). */
struct s_idset {
    uint8_t (*keys)[S_ID_LEN];
    size_t cap; /* power of two */
    size_t n;
};

static int
s_id_zero(const uint8_t *k)
{
    uint64_t a;
    uint64_t b;

    memcpy(&a, k, 8);
    memcpy(&b, k + 8, 8);
    return (a | b) == 0;
}

static int
s_id_eq(const uint8_t *x, const uint8_t *y)
{
    uint64_t a[2];
    uint64_t b[2];

    memcpy(a, x, 16);
    memcpy(b, y, 16);
    return a[0] == b[0] && a[1] == b[1];
}

static size_t
s_idset_slot(const struct s_idset *s, const uint8_t *id)
{
    uint64_t h;
    size_t i;

    memcpy(&h, id, sizeof(h));
    i = (size_t)h & (s->cap - 1);
    while (!s_id_zero(s->keys[i]) && !s_id_eq(s->keys[i], id)) {
        i = (i + 1) & (s->cap - 1);
    }
    return i;
}

/* Two generations of ids: inserts go to the current one; when it holds half the capacity the
 * older one is emptied and becomes current. So the last cap/2 ids are always remembered and
 * nothing is ever deleted from a probe chain. */
struct s_recent {
    struct s_idset gen[2];
    int cur;
    size_t half; /* ids per generation before it rotates */
};

static void
s_recent_init(struct s_recent *r, size_t ids)
{
    size_t cap = 16;
    int g;

    r->half = ids / 2 > 0 ? ids / 2 : 1;
    while (cap < r->half * 2) {
        cap *= 2;
    }
    for (g = 0; g < 2; g++) {
        r->gen[g].cap = cap;
        r->gen[g].n = 0;
        r->gen[g].keys = esc_calloc(cap, S_ID_LEN);
    }
    r->cur = 0;
}

static void
s_recent_fini(struct s_recent *r)
{
    ESC_FREE(r->gen[0].keys);
    ESC_FREE(r->gen[1].keys);
}

/* Asks the CPU for the slots where s_recent_check_put looks id up first. */
static void
s_recent_prefetch(const struct s_recent *r, const uint8_t *id)
{
    uint64_t h;

    memcpy(&h, id, sizeof(h));
    __builtin_prefetch(r->gen[0].keys[h & (r->gen[0].cap - 1)]);
    __builtin_prefetch(r->gen[1].keys[h & (r->gen[1].cap - 1)]);
}

/* Returns 1 when id was seen; otherwise remembers it and returns 0. */
static int
s_recent_check_put(struct s_recent *r, const uint8_t *id)
{
    struct s_idset *cur = &r->gen[r->cur];
    struct s_idset *old = &r->gen[1 - r->cur];
    uint64_t h;
    size_t i;

    /* both generations are large: start both first probes' cache misses at once */
    memcpy(&h, id, sizeof(h));
    __builtin_prefetch(cur->keys[h & (cur->cap - 1)]);
    if (!s_id_zero(old->keys[s_idset_slot(old, id)])) {
        return 1;
    }
    i = s_idset_slot(cur, id);
    if (!s_id_zero(cur->keys[i])) {
        return 1;
    }
    if (cur->n >= r->half) {
        memset(old->keys, 0, old->cap * S_ID_LEN);
        old->n = 0;
        r->cur = 1 - r->cur;
        cur = old;
        i = s_idset_slot(cur, id);
    }
    memcpy(cur->keys[i], id, S_ID_LEN);
    cur->n++;
    return 0;
}


/* Interned strings: each distinct string is stored once in an arena and named by its index
 * (sid). */
struct s_str {
    const char *s; /* NUL-terminated, in the arena */
    uint32_t len;
    uint32_t hash;
    int32_t tl;    /* batch tables: topic list of this topic key, -1 */
};

struct s_chunk {
    struct s_chunk *next;
    size_t len;
    size_t cap;
    char data[];
};

/* A slot of the string table's index: the string itself is there too, so that a look-up (the
 * hot path: every term of every post) touches the slot and the text, not also strs[sid]. */
struct s_islot {
    const char *s;      /* the interned text (in the arena) */
    uint32_t hash;
    uint32_t sid1;      /* sid + 1; 0 = empty */
};

struct s_strtab {
    struct s_str *strs;
    size_t n;
    size_t cap;
    struct s_islot *slots;
    size_t cap_slots;   /* power of two */
    struct s_chunk *chunks; /* the one in use first */
    struct s_chunk *spare;  /* emptied chunks, reused before allocating */
};

static void
s_strtab_init(struct s_strtab *t)
{
    memset(t, 0, sizeof(*t));
    t->cap_slots = 256;
    t->slots = esc_calloc(t->cap_slots, sizeof(*t->slots));
}

static void
s_chunks_free(struct s_chunk *c)
{
    while (c != NULL) {
        struct s_chunk *next = c->next;

        esc_free(c);
        c = next;
    }
}

static void
s_strtab_fini(struct s_strtab *t)
{
    s_chunks_free(t->chunks);
    s_chunks_free(t->spare);
    ESC_FREE(t->strs);
    ESC_FREE(t->slots);
}

/* Empties the table and keeps its memory. */
static void
s_strtab_reset(struct s_strtab *t)
{
    if (t->n > 0) {
        memset(t->slots, 0, t->cap_slots * sizeof(*t->slots));
    }
    t->n = 0;
    while (t->chunks != NULL) {
        struct s_chunk *c = t->chunks;

        t->chunks = c->next;
        c->len = 0;
        c->next = t->spare;
        t->spare = c;
    }
}

static char *
s_arena_alloc(struct s_strtab *t, size_t n)
{
    struct s_chunk *c = t->chunks;

    if (c == NULL || c->cap - c->len < n) {
        if (t->spare != NULL && t->spare->cap >= n) {
            c = t->spare;
            t->spare = c->next;
        }
        else {
            size_t cap = n > 65536 ? n : 65536;

            c = esc_malloc(sizeof(*c) + cap);
            c->cap = cap;
        }
        c->len = 0;
        c->next = t->chunks;
        t->chunks = c;
    }
    c->len += n;
    return c->data + c->len - n;
}

/* True when the NUL-terminated text equals the len bytes at s (which hold no NUL: interned
 * strings come from C strings). Never reads text past its NUL. */
static int
s_text_eq(const char *text, const char *s, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        if (text[i] != s[i] || text[i] == '\0') {
            return 0;
        }
    }
    return text[len] == '\0';
}

static uint32_t
s_str_hash(const char *s, size_t len)
{
    return (uint32_t)s_hash_bytes(s, len);
}

/* Asks the CPU for the index slot where a string of hash h is looked up first. The tables are
 * large (every distinct term and author of a flush interval), so each look-up is a cache miss;
 * issued for the terms of a post before they are interned, the misses overlap. */
static void
s_intern_prefetch(const struct s_strtab *t, uint32_t h)
{
    __builtin_prefetch(&t->slots[h & (t->cap_slots - 1)]);
}

/* s_text_eq eight bytes at a time, for an s with at least (len & ~7) + 8 readable bytes (text
 * is an interned string: s_intern_at pads it with zeros to a multiple of eight bytes). A word
 * of text is only read while text matched s so far, so never past text's padding. */
static int
s_text_eq_wide(const char *text, const char *s, size_t len)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    size_t lo = 0;
    uint64_t a;
    uint64_t b;
    uint64_t mask_b;

    for (; lo + 8 <= len; lo += 8) {
        memcpy(&a, text + lo, 8);
        memcpy(&b, s + lo, 8);
        if (a != b) {
            return 0;
        }
    }
    /* the word holding text[len], which must be its NUL: s's bytes from len on count as 0 */
    memcpy(&a, text + lo, 8);
    memcpy(&b, s + lo, 8);
    mask_b = len > lo ? ~0ULL >> (64 - 8 * (len - lo)) : 0;
    return (a & (~0ULL >> (56 - 8 * (len - lo)))) == (b & mask_b);
#else
    return s_text_eq(text, s, len);
#endif
}

/* s_intern with s_str_hash(s, len) already computed; wide: s has (len & ~7) + 8 readable
 * bytes (s_text_eq_wide). */
static inline uint32_t
s_intern_at(struct s_strtab *t, const char *s, size_t len, uint32_t h, int wide)
{
    size_t i = h & (t->cap_slots - 1);
    struct s_str *e;
    char *copy;
    size_t padded;

    while (t->slots[i].sid1 != 0) {
        const struct s_islot *sl = &t->slots[i];

        if (sl->hash == h
            && (wide ? s_text_eq_wide(sl->s, s, len) : s_text_eq(sl->s, s, len))) {
            return sl->sid1 - 1;
        }
        i = (i + 1) & (t->cap_slots - 1);
    }
    if ((t->n + 1) * 2 > t->cap_slots) {
        size_t k;

        ESC_FREE(t->slots);
        t->cap_slots *= 2;
        t->slots = esc_calloc(t->cap_slots, sizeof(*t->slots));
        for (k = 0; k < t->n; k++) {
            size_t j = t->strs[k].hash & (t->cap_slots - 1);

            while (t->slots[j].sid1 != 0) {
                j = (j + 1) & (t->cap_slots - 1);
            }
            t->slots[j].s = t->strs[k].s;
            t->slots[j].hash = t->strs[k].hash;
            t->slots[j].sid1 = (uint32_t)(k + 1);
        }
        i = h & (t->cap_slots - 1);
        while (t->slots[i].sid1 != 0) {
            i = (i + 1) & (t->cap_slots - 1);
        }
    }
    ESC_ASSERT(t->n < (1u << 31));
    t->strs = s_grow(t->strs, &t->cap, t->n + 1, sizeof(*t->strs));
    padded = (len + 8) & ~(size_t)7; /* the NUL and zeros to a multiple of 8 bytes */
    copy = s_arena_alloc(t, padded);
    memset(copy + (padded - 8), 0, 8);
    memcpy(copy, s, len);
    copy[len] = '\0';
    e = &t->strs[t->n];
    e->s = copy;
    e->len = (uint32_t)len;
    e->hash = h;
    e->tl = -1;
    t->slots[i].s = copy;
    t->slots[i].hash = h;
    t->slots[i].sid1 = (uint32_t)(t->n + 1);
    return (uint32_t)t->n++;
}

/* s_intern with s_str_hash(s, len) already computed. */
static uint32_t
s_intern_h(struct s_strtab *t, const char *s, size_t len, uint32_t h)
{
    return s_intern_at(t, s, len, h, 0);
}

/* s_intern_h of an s with (len & ~7) + 8 readable bytes (interned text, a term buffer). */
static uint32_t
s_intern_hw(struct s_strtab *t, const char *s, size_t len, uint32_t h)
{
    return s_intern_at(t, s, len, h, 1);
}

/* The sid of the len bytes at s, interned when new. */
static uint32_t
s_intern(struct s_strtab *t, const char *s, size_t len)
{
    return s_intern_h(t, s, len, s_str_hash(s, len));
}

/* ---- data ------------------------------------------------------------------------------- */

/* One post that matched topics. refs[refs .. +n_topics) are topic sids, then n_tags hashtag
 * sids, then n_terms term sids. */
struct s_rec {
    uint8_t id[S_ID_LEN];
    int64_t created_at;   /* Unix ms */
    int64_t followers;    /* >= 0 */
    int64_t likes;        /* >= 0 */
    int64_t reposts;      /* >= 0 */
    int64_t replies;      /* >= 0 */
    int64_t infl_milli;   /* agg_counters_influence x 1000, rounded */
    int32_t sent_milli;   /* sentiment x 1000, rounded, in [-1000, 1000] */
    uint32_t lang;        /* sid */
    uint32_t platform;    /* sid */
    uint32_t author;      /* sid or S_NONE */
    uint32_t refs;
    uint16_t n_topics;
    uint16_t n_tags;
    uint16_t n_terms;
};

/* What a top-posts hash shows of a post: "platform:id\0text\0url\0author\0author_name\0
 * platform\0lang\0". One per post, shared by its candidates in every topic it matched (they are
 * always in the same batch, or in the top lists fed from it, so one thread owns all of them at
 * any time: the count needs no atomics). */
struct s_blob {
    uint32_t refs;
    char s[];
};

/* A post kept with what its top-posts hash shows. */
struct s_cand {
    uint32_t rec;         /* record in its batch (meaningless once moved to the top lists) */
    int64_t eng;          /* likes + reposts + replies: the score */
    int64_t created_at;
    int64_t likes;
    int64_t reposts;
    int64_t replies;
    int64_t followers;
    int32_t sent_milli;
    struct s_blob *blob;  /* a reference; NULL once moved */
};

/* Min-heap on eng of at most top_posts_n candidates. */
struct s_heap {
    int64_t day;          /* UTC day start, Unix s */
    struct s_cand *c;     /* owned; grows to the heap's bound as candidates come */
    size_t n;
    size_t cap;
};

/* The records of one topic in a batch, in arrival order. */
struct s_tlist {
    uint32_t topic;       /* sid of "team/topic" */
    uint32_t *recs;       /* owned; kept when the batch is recycled */
    size_t n;
    size_t cap;
    struct s_heap *heaps; /* top-post candidates, one heap per day; owned */
    size_t n_heaps;
    int32_t bar;          /* the topic's s_bar (index), -1 until looked up, -2 when its hash
                             is another topic's */
};

/* Per topic, kept by the loop thread: the engagement of the top_posts_n most engaged posts it
 * offered today (a min-heap), so that a post that cannot enter the day's top posts gets no
 * candidate and no copy of its text. */
struct s_bar {
    char *topic;          /* owned */
    int64_t day;          /* UTC day start, Unix s */
    int64_t *eng;         /* top_posts_n; owned */
    size_t n;
};

/* One script call: records tl.recs[a, b) of a topic list. */
struct s_part {
    uint32_t tl;
    uint32_t a;
    uint32_t b;
    int done;             /* acknowledged (or dropped after an error reply) */
    uint32_t *excl;       /* sorted records left out: duplicates; owned */
    size_t n_excl;
    size_t cap_excl;
    uint32_t *sent;       /* records in the order their ids were last sent; owned */
    size_t n_sent;
    size_t cap_sent;
};

struct s_list {
    char *key;            /* owned */
    char *value;          /* owned */
    long max_len;
    int done;
};

/* What the records of a run (s_part_applied) add to one batch string as a member of the
 * hashtags and terms lists and, as an author, where its sums are in s_run.auth. */
struct s_acc {
    uint32_t n[2];         /* posts that carry it: [0] hashtag, [1] term */
    uint32_t author;       /* index + 1 in s_run.auth, 0 = not an author of the run */
};

struct s_batch {
    uint64_t seq;          /* 0 while open */
    struct s_strtab st;
    struct s_rec *recs;
    size_t n_recs;
    size_t cap_recs;
    uint32_t *refs;
    size_t n_refs;
    size_t cap_refs;
    struct s_tlist *tl;
    size_t n_tl;
    size_t cap_tl;         /* slots whose recs buffers exist */
    struct s_part *parts;  /* built when frozen */
    size_t n_parts;
    size_t cap_parts;
    struct s_list *lists;
    size_t n_lists;
    size_t cap_lists;
    int64_t processed;     /* valid posts consumed into this batch, duplicates included */
    int processed_done;
    uint32_t *tsid;        /* batch sid -> sid in the top lists (tops_gen), S_NONE unknown */
    size_t cap_tsid;
    uint64_t tsid_gen;     /* the top-list table tsid refers to */
    struct s_acc *acc;     /* batch sid -> its sums in the run being added (all zero between
                              runs) */
    size_t cap_acc;
};

/* Top lists accumulated in memory from acknowledged posts, written every top_flush_ms. */
struct s_tentry {
    uint32_t group;
    uint32_t sid;          /* member */
    int64_t posts;         /* authors: posts; hashtags and terms: posts carrying it */
    int64_t reach;         /* authors only */
    int64_t eng;           /* authors only */
    int64_t infl_milli;    /* authors only: the score */
};

/* A slot of a list's index of its entries. */
struct s_gslot {
    uint32_t sid;          /* member */
    uint32_t entry1;       /* entry + 1; 0 = empty slot */
};

struct s_tgroup {
    uint32_t topic;        /* sid */
    int kind;              /* enum agg_top */
    int64_t day;           /* UTC day start, Unix s */
    uint32_t *entries;     /* owned */
    size_t n;
    size_t cap;
    struct s_gslot *tab;   /* member -> entry, open addressing; owned. One table per list:
                              the lists a part feeds stay in cache while it is added, where one
                              table of every list's entries made each look-up a cache miss */
    size_t cap_tab;        /* power of two, or 0 */
    struct s_heap heap;    /* AGG_TOP_POSTS only */
};

struct s_ttopic {
    uint32_t topic;        /* sid */
    uint32_t *groups;      /* owned */
    size_t n;
    size_t cap;
    int done;
};

struct s_tops {
    uint64_t gen;          /* unique per table, for the batches' sid caches */
    uint64_t seq;          /* 0 while open */
    struct s_strtab st;
    struct s_map groups_m; /* (topic, day, kind) -> group */
    struct s_map days_m;   /* day -> index in days */
    int64_t *days;
    size_t n_days;
    size_t cap_days;
    struct s_tgroup *groups;
    size_t n_groups;
    size_t cap_groups;
    struct s_tentry *entries;
    size_t n_entries;
    size_t cap_entries;
    struct s_ttopic *tt;   /* per topic, built when frozen */
    size_t n_tt;
    size_t prune_at;       /* entries that make s_tops_prune run */
};

/* Aggregation of one part, rebuilt for every send. */
struct s_cellagg {
    int res;
    int64_t start;         /* bucket start, Unix s (0 for totals) */
    int64_t v[S_NFIX];
};

struct s_dynagg {
    int kind;              /* 0 language, 1 platform */
    uint32_t cell;
    uint32_t sid;
    int64_t n;
};

/* Command arguments: bytes back to back, pointers made at the end (the buffer moves). */
struct s_args {
    char *buf;
    size_t len;
    size_t cap;
    size_t *off;
    size_t *lens;
    size_t n;
    size_t cap_n;
    const char **argv;
    size_t cap_argv;
};

/* An author's sums over a run. */
struct s_asum {
    int64_t posts;
    int64_t reach;
    int64_t eng;
    int64_t infl_milli;
};

/* The members a run of records adds to the top lists, in the order they first came:
 * sid << 2 | kind (enum agg_top). */
struct s_run {
    uint32_t *upd;
    size_t n;
    size_t cap_upd;
    struct s_asum *auth;
    size_t n_auth;
    size_t cap_auth;
};

struct s_ws {
    struct s_map cells_m;
    struct s_map dyn_m;
    struct s_map hours_m;
    struct s_map ids_m;
    struct s_cellagg *cells;
    size_t n_cells;
    size_t cap_cells;
    struct s_dynagg *dyn;
    size_t n_dyn;
    size_t cap_dyn;
    int64_t *hours;        /* distinct hours of the sent ids */
    size_t *hour_n;        /* ids per hour */
    size_t n_hours;
    size_t cap_hours;
    size_t cap_hour_n;
    uint32_t *tmp;         /* scratch */
    size_t cap_tmp;
    uint32_t *hour_of;     /* hour index of each sent id */
    size_t cap_hour_of;
    struct s_map cols_m;   /* language/platform -> field column of a part's call */
    uint32_t *dcol;        /* field column of each dyn entry */
    size_t cap_dcol;
    int64_t *row;          /* one cell's deltas, by column */
    size_t cap_row;
    struct s_args args;
    struct s_run run;      /* s_part_applied */
};

struct agg_counters {
    esc_kv_t *kv;                 /* borrowed */
    char prefix[64];
    int64_t retention_s[3];
    int64_t dedupe_window_s;
    int64_t top_flush_ms;
    int64_t top_step_ms;          /* 0: due top lists are written whole */
    size_t max_posts;
    size_t top_n;
    size_t top_posts_n;
    size_t top_flush_max;
    size_t top_max_entries;
    char instance[40];
    char sha[48];                 /* SHA1 of the loaded script, "" until loaded */
    uint64_t seq;                 /* last sequence number used (batches and top lists) */
    uint64_t tops_gen;            /* last top-list table generation */
    int64_t next_tops_ms;         /* monotonic time the open top lists are due */

    struct s_recent recent;
    struct s_map bars_m;          /* hash of "team/topic" -> index in bars */
    struct s_bar *bars;
    size_t n_bars;
    size_t cap_bars;
    struct s_batch *open;         /* receives posts */
    struct s_batch *frozen;       /* being written; NULL when none */
    struct s_batch *spare;        /* a written batch kept for its buffers */
    struct s_tops *tops;          /* top lists being accumulated */
    struct s_tops *tops_frozen;   /* top lists being written; NULL when none */
    struct s_tops *tops_spare;    /* written top lists kept for their buffers */
    int counters_only;            /* no top lists: no terms, authors, candidates */
    struct s_ws ws;
    struct agg_counters_stats stats;
    struct agg_counters_stats *fst; /* where flush-side code counts: stats, or tstats while
                                       the flush thread runs (added to stats when collected) */

    /* flush thread (agg_counters_start_thread): the fields above that flushes use (kv, ws,
     * sha, seq, frozen, tops*, tstats) belong to the thread from agg_counters_flush_start to
     * agg_counters_flush_collect */
    int threaded;                 /* the thread runs */
    int busy;                     /* loop thread: a flush was started and not collected */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int job;                      /* mu: a flush was handed over and has not finished */
    int job_final;                /* mu */
    int job_done;                 /* mu: finished, not collected */
    esc_rc job_rc;                /* mu */
    int stop;                     /* mu: the thread ends */
    int wake[2];                  /* pipe: the thread writes a byte when a flush is done */
    struct agg_counters_stats tstats;
};

/* ---- time buckets, heaps ---------------------------------------------------------------- */

static int64_t
s_floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;

    if (a % b != 0 && a < 0) {
        q--;
    }
    return q;
}

/* Bucket start (Unix s) of event time ms at resolution res (not TOTAL). */
static int64_t
s_bucket(int64_t ms, int res)
{
    return s_floor_div(s_floor_div(ms, 1000), s_res_s[res]) * s_res_s[res];
}

static void
s_cand_swap(struct s_cand *a, struct s_cand *b)
{
    struct s_cand t = *a;

    *a = *b;
    *b = t;
}

static void
s_heap_down(struct s_heap *h, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1;
        size_t m = i;

        if (l < h->n && h->c[l].eng < h->c[m].eng) {
            m = l;
        }
        if (l + 1 < h->n && h->c[l + 1].eng < h->c[m].eng) {
            m = l + 1;
        }
        if (m == i) {
            return;
        }
        s_cand_swap(&h->c[i], &h->c[m]);
        i = m;
    }
}

static void
s_heap_up(struct s_heap *h, size_t i)
{
    while (i > 0 && h->c[(i - 1) / 2].eng > h->c[i].eng) {
        s_cand_swap(&h->c[i], &h->c[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
}

/* The slot where a candidate with engagement eng goes in a heap of at most k, or NULL when it
 * would not make it. A replaced candidate's blob is freed. Call s_heap_fix after filling it. */
/* Drops one reference to bl (NULL-safe). */
static void
s_blob_unref(struct s_blob *bl)
{
    if (bl != NULL && --bl->refs == 0) {
        esc_free(bl);
    }
}

static struct s_cand *
s_heap_slot(struct s_heap *h, size_t k, int64_t eng)
{
    if (h->n < k) {
        if (h->n == h->cap) {
            size_t cap = h->cap < 2 ? 4 : 2 * h->cap;

            h->cap = cap < k ? cap : k;
            h->c = esc_realloc(h->c, h->cap * sizeof(*h->c));
        }
        return &h->c[h->n++];
    }
    if (eng <= h->c[0].eng) {
        return NULL;
    }
    s_blob_unref(h->c[0].blob);
    h->c[0].blob = NULL;
    return &h->c[0];
}

static void
s_heap_fix(struct s_heap *h, const struct s_cand *slot)
{
    size_t i = (size_t)(slot - h->c);

    if (i == 0) {
        s_heap_down(h, 0);
    }
    else {
        s_heap_up(h, i);
    }
}

static void
s_heap_free(struct s_heap *h)
{
    size_t k;

    for (k = 0; k < h->n; k++) {
        s_blob_unref(h->c[k].blob);
    }
    ESC_FREE(h->c);
    h->n = 0;
    h->cap = 0;
}

/* ---- batches ---------------------------------------------------------------------------- */

static struct s_batch *
s_batch_new(void)
{
    struct s_batch *b = esc_calloc(1, sizeof(*b));

    s_strtab_init(&b->st);
    return b;
}

/* Empties b for reuse, keeping its buffers. */
static void
s_batch_reset(struct s_batch *b)
{
    size_t i;
    size_t h;

    for (i = 0; i < b->n_tl; i++) {
        for (h = 0; h < b->tl[i].n_heaps; h++) {
            s_heap_free(&b->tl[i].heaps[h]);
        }
        ESC_FREE(b->tl[i].heaps);
        b->tl[i].n_heaps = 0;
        b->tl[i].n = 0;
    }
    for (i = 0; i < b->n_parts; i++) {
        ESC_FREE(b->parts[i].excl);
        ESC_FREE(b->parts[i].sent);
    }
    for (i = 0; i < b->n_lists; i++) {
        esc_free(b->lists[i].key);
        esc_free(b->lists[i].value);
    }
    s_strtab_reset(&b->st);
    b->seq = 0;
    b->n_recs = 0;
    b->n_refs = 0;
    b->n_tl = 0;
    b->n_parts = 0;
    b->n_lists = 0;
    b->processed = 0;
    b->processed_done = 0;
    b->tsid_gen = 0;
}

static void
s_batch_free(struct s_batch **bp)
{
    struct s_batch *b = *bp;
    size_t i;

    if (b == NULL) {
        return;
    }
    s_batch_reset(b);
    for (i = 0; i < b->cap_tl; i++) {
        esc_free(b->tl[i].recs);
    }
    esc_free(b->parts);
    esc_free(b->lists);
    esc_free(b->tl);
    esc_free(b->refs);
    esc_free(b->recs);
    esc_free(b->tsid);
    esc_free(b->acc);
    s_strtab_fini(&b->st);
    esc_free(b);
    *bp = NULL;
}

static int
s_batch_empty(const struct s_batch *b)
{
    return b->n_recs == 0 && b->n_lists == 0 && b->processed == 0;
}

static struct s_tlist *
s_tlist_get(struct s_batch *b, uint32_t topic)
{
    struct s_str *e = &b->st.strs[topic];
    struct s_tlist *t;

    if (e->tl >= 0) {
        return &b->tl[e->tl];
    }
    if (b->n_tl == b->cap_tl) {
        size_t old = b->cap_tl;

        b->tl = s_grow(b->tl, &b->cap_tl, b->n_tl + 1, sizeof(*b->tl));
        memset(b->tl + old, 0, (b->cap_tl - old) * sizeof(*b->tl));
    }
    t = &b->tl[b->n_tl];
    t->topic = topic;
    t->n = 0;
    t->n_heaps = 0;
    t->heaps = NULL;
    t->bar = -1;
    e->tl = (int32_t)b->n_tl++;
    return t;
}

/* ---- top lists in memory ---------------------------------------------------------------- */

static struct s_tops *
s_tops_new(agg_counters_t *self)
{
    struct s_tops *t = esc_calloc(1, sizeof(*t));

    t->gen = ++self->tops_gen;
    t->prune_at = self->top_max_entries;
    s_strtab_init(&t->st);
    s_map_init(&t->groups_m);
    s_map_init(&t->days_m);
    return t;
}

static void
s_tops_free(struct s_tops **tp)
{
    struct s_tops *t = *tp;
    size_t i;

    if (t == NULL) {
        return;
    }
    for (i = 0; i < t->n_groups; i++) {
        esc_free(t->groups[i].entries);
        esc_free(t->groups[i].tab);
        s_heap_free(&t->groups[i].heap);
    }
    for (i = 0; i < t->n_tt; i++) {
        esc_free(t->tt[i].groups);
    }
    esc_free(t->tt);
    esc_free(t->groups);
    esc_free(t->entries);
    esc_free(t->days);
    s_map_fini(&t->groups_m);
    s_map_fini(&t->days_m);
    s_strtab_fini(&t->st);
    esc_free(t);
    *tp = NULL;
}

/* Empties t for reuse as a new table, keeping its large buffers. */
static void
s_tops_reset(agg_counters_t *self, struct s_tops *t)
{
    size_t i;

    for (i = 0; i < t->n_groups; i++) {
        ESC_FREE(t->groups[i].entries);
        ESC_FREE(t->groups[i].tab);
        t->groups[i].cap_tab = 0;
        s_heap_free(&t->groups[i].heap);
    }
    for (i = 0; i < t->n_tt; i++) {
        esc_free(t->tt[i].groups);
    }
    ESC_FREE(t->tt);
    t->n_tt = 0;
    t->n_groups = 0;
    t->n_days = 0;
    t->n_entries = 0;
    s_map_clear(&t->groups_m);
    s_map_clear(&t->days_m);
    s_strtab_reset(&t->st);
    t->seq = 0;
    t->gen = ++self->tops_gen;
    t->prune_at = self->top_max_entries;
}

static int
s_tops_empty(const struct s_tops *t)
{
    return t->n_groups == 0;
}

/* The group of (topic sid, kind, day) in t. */
static uint32_t
s_tops_group(struct s_tops *t, uint32_t topic, int kind, int64_t day)
{
    int found;
    uint32_t *d = s_map_put(&t->days_m, (uint64_t)day | (1ULL << 63), (uint32_t)t->n_days,
                            &found);
    uint32_t *g;
    struct s_tgroup *gr;

    if (!found) {
        t->days = s_grow(t->days, &t->cap_days, t->n_days + 1, sizeof(*t->days));
        t->days[t->n_days++] = day;
    }
    ESC_ASSERT(*d < (1u << 22) && topic < (1u << 31));
    g = s_map_put(&t->groups_m,
                  (1ULL << 63) | ((uint64_t)topic << 24) | ((uint64_t)*d << 2) | (uint64_t)kind,
                  (uint32_t)t->n_groups, &found);
    if (found) {
        return *g;
    }
    t->groups = s_grow(t->groups, &t->cap_groups, t->n_groups + 1, sizeof(*t->groups));
    gr = &t->groups[t->n_groups];
    memset(gr, 0, sizeof(*gr));
    gr->topic = topic;
    gr->kind = kind;
    gr->day = day;
    gr->heap.day = day;
    return (uint32_t)t->n_groups++;
}

/* First slot of member sid in a list's index of cap_tab slots. */
static size_t
s_gslot_of(uint32_t sid, size_t cap_tab)
{
    return (size_t)(((uint64_t)sid * 0x9E3779B97F4A7C15ULL) >> 32) & (cap_tab - 1);
}

/* Rebuilds the index of list g from its entries, with room for at least `room` entries. */
static void
s_tgroup_index(const struct s_tops *t, struct s_tgroup *g, size_t room)
{
    size_t cap = 16;
    size_t k;

    while (cap < 2 * room) {
        cap *= 2;
    }
    if (cap != g->cap_tab) {
        esc_free(g->tab);
        g->tab = esc_malloc(cap * sizeof(*g->tab));
        g->cap_tab = cap;
    }
    memset(g->tab, 0, cap * sizeof(*g->tab));
    for (k = 0; k < g->n; k++) {
        uint32_t sid = t->entries[g->entries[k]].sid;
        size_t i = s_gslot_of(sid, cap);

        while (g->tab[i].entry1 != 0) {
            i = (i + 1) & (cap - 1);
        }
        g->tab[i].sid = sid;
        g->tab[i].entry1 = g->entries[k] + 1;
    }
}

static struct s_tentry *
s_tops_entry(struct s_tops *t, uint32_t group, uint32_t sid)
{
    struct s_tgroup *g = &t->groups[group];
    struct s_tentry *e;
    size_t i;

    if ((g->n + 1) * 2 > g->cap_tab) {
        s_tgroup_index(t, g, g->n + 1);
    }
    i = s_gslot_of(sid, g->cap_tab);
    while (g->tab[i].entry1 != 0) {
        if (g->tab[i].sid == sid) {
            return &t->entries[g->tab[i].entry1 - 1];
        }
        i = (i + 1) & (g->cap_tab - 1);
    }
    ESC_ASSERT(group < (1u << 31) && t->n_entries < UINT32_MAX);
    t->entries = s_grow(t->entries, &t->cap_entries, t->n_entries + 1, sizeof(*t->entries));
    e = &t->entries[t->n_entries];
    memset(e, 0, sizeof(*e));
    e->group = group;
    e->sid = sid;
    g->entries = s_grow(g->entries, &g->cap, g->n + 1, sizeof(*g->entries));
    g->entries[g->n++] = (uint32_t)t->n_entries;
    g->tab[i].sid = sid;
    g->tab[i].entry1 = (uint32_t)t->n_entries + 1;
    return &t->entries[t->n_entries++];
}

/* ---- recording posts -------------------------------------------------------------------- */

/* 16-byte identity of a post: BLAKE2b-128 of platform, NUL, id. Never all zero. */
static void
s_post_id(const struct esc_post *p, uint8_t *out)
{
    crypto_generichash_state st;
    static const unsigned char zero = 0;

    crypto_generichash_init(&st, NULL, 0, S_ID_LEN);
    crypto_generichash_update(&st, (const unsigned char *)p->platform, strlen(p->platform));
    crypto_generichash_update(&st, &zero, 1);
    crypto_generichash_update(&st, (const unsigned char *)p->id, strlen(p->id));
    crypto_generichash_final(&st, out, S_ID_LEN);
    if (s_id_zero(out)) {
        out[0] = 1;
    }
}

/* The length of s when it is 1..max bytes of printable ASCII without spaces (a field name
 * part), else 0. */
static size_t
s_token_ok(const char *s, size_t max)
{
    size_t i;

    if (s == NULL || s[0] == '\0') {
        return 0;
    }
    for (i = 0; s[i] != '\0'; i++) {
        if (i >= max || (unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f) {
            return 0;
        }
    }
    return i;
}

static int64_t
s_nonneg(int64_t v)
{
    return v > 0 ? v : 0;
}

double
agg_counters_influence(int64_t followers, int64_t engagement)
{
    return (1.0 + log10(1.0 + (double)s_nonneg(followers)))
           * (1.0 + log10(1.0 + (double)s_nonneg(engagement)));
}

#define S_PEND_MAX 32     /* terms held back (and prefetched) before they are interned */

/* A term waiting to be interned, with its hashes (as a term, and as a tag without the '#'). */
struct s_pterm {
    char s[AGG_TERM_MAX + 8]; /* the term (len bytes, not NUL-terminated) and what followed */
    uint32_t len;
    uint32_t h;
    uint32_t h_tag;
};

/* Collects distinct sids (at most max) from term callbacks. */
struct s_collect {
    struct s_strtab *st;
    uint32_t *out;
    size_t n;
    size_t max;
    int tags_only;        /* keep only "#tag" terms, without the '#' */
    uint32_t *tags;       /* when not NULL, "#tag" terms also go here (without '#') */
    size_t n_tags;
    uint64_t bloom_out;   /* s_add_distinct of out */
    uint64_t bloom_tags;  /* s_add_distinct of tags */
    int defer;            /* terms go to pend first (s_on_term_defer); s_pend_run interns them */
    struct s_pterm pend[S_PEND_MAX];
    size_t n_pend;
};

/* Appends sid to out[0..*n) (at most max) unless it is there. *bloom has bit sid % 64 set for
 * every sid in out: a sid whose bit is clear is new without a scan of out. */
static void
s_add_distinct(uint32_t *out, size_t *n, size_t max, uint32_t sid, uint64_t *bloom)
{
    uint64_t bit = 1ULL << (sid & 63);
    size_t i;

    if ((*bloom & bit) != 0) {
        for (i = 0; i < *n; i++) {
            if (out[i] == sid) {
                return;
            }
        }
    }
    if (*n < max) {
        out[(*n)++] = sid;
        *bloom |= bit;
    }
}

/* One term of the post, in order: "#tag" terms also count as hashtags (tags), every term
 * as a term while fewer than max distinct ones were kept. h and h_tag: s_str_hash of the term
 * and of the term without its '#' (only read when term is "#tag"). */
static void
s_term_add(struct s_collect *c, const char *term, size_t len, uint32_t h, uint32_t h_tag)
{
    int wide = len <= AGG_TERM_MAX; /* then term is in a buffer of AGG_TERM_MAX + 8 bytes */

    if (term[0] == '#' && (c->tags_only || c->tags != NULL)) {
        uint32_t sid = wide ? s_intern_hw(c->st, term + 1, len - 1, h_tag)
                            : s_intern_h(c->st, term + 1, len - 1, h_tag);

        if (c->tags_only) {
            s_add_distinct(c->out, &c->n, c->max, sid, &c->bloom_out);
            return;
        }
        s_add_distinct(c->tags, &c->n_tags, S_TAGS_PER_POST, sid, &c->bloom_tags);
    }
    else if (c->tags_only) {
        return;
    }
    if (c->n < c->max) {
        s_add_distinct(c->out, &c->n, c->max,
                       wide ? s_intern_hw(c->st, term, len, h) : s_intern_h(c->st, term, len, h),
                       &c->bloom_out);
    }
}

static void
s_on_term(void *arg, const char *term, size_t len)
{
    struct s_collect *c = arg;

    s_term_add(c, term, len, s_str_hash(term, len),
               term[0] == '#' ? s_str_hash(term + 1, len - 1) : 0);
}

/* Interns the pending terms in the order they came. A few terms ahead, the text of the slot
 * each will probe first is fetched too (its slot was prefetched when it was collected). */
static void
s_pend_run(struct s_collect *c)
{
    size_t i;

    for (i = 0; i < c->n_pend; i++) {
        const struct s_pterm *pt = &c->pend[i];

        if (i + 4 < c->n_pend) {
            const struct s_pterm *ahead = &c->pend[i + 4];
            const struct s_islot *sl = &c->st->slots[ahead->h & (c->st->cap_slots - 1)];

            if (sl->sid1 != 0) {
                __builtin_prefetch(sl->s);
            }
        }
        s_term_add(c, pt->s, pt->len, pt->h, pt->h_tag);
    }
    c->n_pend = 0;
}

/* agg_term_fn of the text: keeps the term (the callback's buffer is borrowed) with its hashes
 * and prefetches its slots; interned by s_pend_run, in the same order. */
static void
s_on_term_defer(void *arg, const char *term, size_t len)
{
    struct s_collect *c = arg;
    struct s_pterm *pt;

    if (len > AGG_TERM_MAX) {
        s_pend_run(c); /* not expected (terms.h): taken at once, after those before it */
        s_on_term(arg, term, len);
        return;
    }
    if (c->n_pend == S_PEND_MAX) {
        s_pend_run(c);
    }
    pt = &c->pend[c->n_pend++];
    /* fixed size: no call (the buffer is that large); no NUL either: the byte store would
     * stall the word loads of s_text_eq_wide, which ignore the bytes from len on */
    memcpy(pt->s, term, sizeof(pt->s));
    pt->len = (uint32_t)len;
    /* term is in a buffer of AGG_TERM_MAX + 8 bytes (terms.h) */
    pt->h = (uint32_t)s_hash_bytes_wide(term, len);
    pt->h_tag = term[0] == '#' ? (uint32_t)s_hash_bytes_wide(term + 1, len - 1) : 0;
    s_intern_prefetch(c->st, pt->h);
    if (term[0] == '#') {
        s_intern_prefetch(c->st, pt->h_tag);
    }
}

static size_t
s_len(const char *s, size_t max)
{
    size_t n = s != NULL ? strlen(s) : 0;

    return n <= max ? n : 0;
}

/* Appends n bytes of s and a NUL to the blob at *pos. */
static void
s_blob_put(char *blob, size_t *pos, const char *s, size_t n)
{
    if (n > 0) {
        memcpy(blob + *pos, s, n);
    }
    blob[*pos + n] = '\0';
    *pos += n + 1;
}

/* The bar of topic list t of batch b (looked up once per batch and topic), or NULL when two
 * topics share a hash (then nothing is filtered). */
static struct s_bar *
s_bar_of(agg_counters_t *self, const struct s_batch *b, struct s_tlist *t)
{
    const struct s_str *name = &b->st.strs[t->topic];
    uint32_t *v;
    int found;

    if (t->bar == -1) {
        v = s_map_put(&self->bars_m, (1ULL << 63) | s_hash_bytes(name->s, name->len),
                      (uint32_t)self->n_bars, &found);
        if (!found) {
            struct s_bar *nb;

            self->bars = s_grow(self->bars, &self->cap_bars, self->n_bars + 1,
                                sizeof(*self->bars));
            nb = &self->bars[self->n_bars++];
            nb->topic = esc_strndup(name->s, name->len);
            nb->day = INT64_MIN;
            nb->eng = esc_malloc(self->top_posts_n * sizeof(*nb->eng));
            nb->n = 0;
        }
        /* checked once per batch and topic, not at every post */
        t->bar = strcmp(self->bars[*v].topic, name->s) == 0 ? (int32_t)*v : -2;
    }
    if (t->bar < 0) {
        return NULL;
    }
    return &self->bars[t->bar];
}

/* Whether a post of day with engagement eng may be among the day's top_posts_n most engaged of
 * its topic, given those offered so far (ties lose, as in the candidate heaps); notes it. A
 * post of an earlier day always may (late posts are not filtered). */
static int
s_bar_admit(agg_counters_t *self, struct s_bar *bar, int64_t day, int64_t eng)
{
    size_t k = self->top_posts_n;
    size_t i = 0;

    if (bar == NULL || day < bar->day) {
        return 1;
    }
    if (day > bar->day) {
        bar->day = day;
        bar->n = 0;
    }
    if (bar->n < k) {
        /* push, sift up */
        i = bar->n++;
        while (i > 0 && bar->eng[(i - 1) / 2] > eng) {
            bar->eng[i] = bar->eng[(i - 1) / 2];
            i = (i - 1) / 2;
        }
        bar->eng[i] = eng;
        return 1;
    }
    if (eng <= bar->eng[0]) {
        return 0;
    }
    /* replace the least, sift down */
    for (;;) {
        size_t c = 2 * i + 1;

        if (c >= k) {
            break;
        }
        if (c + 1 < k && bar->eng[c + 1] < bar->eng[c]) {
            c++;
        }
        if (bar->eng[c] >= eng) {
            break;
        }
        bar->eng[i] = bar->eng[c];
        i = c;
    }
    bar->eng[i] = eng;
    return 1;
}

/* The blob of post p (record r of batch b), made by the first of its candidates. */
static struct s_blob *
s_blob_of(const struct s_batch *b, const struct s_rec *r, const struct esc_post *p,
          struct s_blob **shared)
{
    const struct s_str *plat = &b->st.strs[r->platform];
    const struct s_str *lang = &b->st.strs[r->lang];
    size_t tlen;
    size_t ulen;
    size_t alen;
    size_t nlen;
    size_t ilen;
    size_t pos;
    struct s_blob *bl;

    if (*shared != NULL) {
        return *shared;
    }
    tlen = p->text != NULL ? strlen(p->text) : 0;
    ulen = s_len(p->url, 2048);
    alen = s_len(p->author, S_AUTHOR_MAX);
    nlen = s_len(p->author_name, 256);
    ilen = strlen(p->id);
    if (tlen > AGG_POST_TEXT_KEEP) {
        tlen = AGG_POST_TEXT_KEEP;
        while (tlen > 0 && ((unsigned char)p->text[tlen] & 0xC0) == 0x80) {
            tlen--; /* do not cut a UTF-8 sequence */
        }
    }
    bl = esc_malloc(sizeof(*bl) + plat->len + 1 + ilen + 1 + tlen + 1 + ulen + 1 + alen + 1
                    + nlen + 1 + plat->len + 1 + lang->len + 1);
    bl->refs = 0;
    memcpy(bl->s, plat->s, plat->len);
    bl->s[plat->len] = ':';
    pos = plat->len + 1;
    s_blob_put(bl->s, &pos, p->id, ilen);
    s_blob_put(bl->s, &pos, p->text, tlen);
    s_blob_put(bl->s, &pos, p->url, ulen);
    s_blob_put(bl->s, &pos, p->author, alen);
    s_blob_put(bl->s, &pos, p->author_name, nlen);
    s_blob_put(bl->s, &pos, plat->s, plat->len);
    s_blob_put(bl->s, &pos, lang->s, lang->len);
    *shared = bl;
    return bl;
}

/* Offers post p (record rec) as a top-post candidate of topic list t of batch b; *shared is
 * the post's blob once one of its candidates made it. */
static void
s_offer_candidate(agg_counters_t *self, const struct s_batch *b, struct s_tlist *t, uint32_t rec,
                  const struct esc_post *p, struct s_blob **shared)
{
    const struct s_rec *r = &b->recs[rec];
    int64_t day = s_bucket(r->created_at, AGG_RES_DAY);
    int64_t eng = r->likes + r->reposts + r->replies;
    struct s_heap *h = NULL;
    struct s_cand *c;
    size_t i;

    if (self->top_posts_n == 0 || !s_bar_admit(self, s_bar_of(self, b, t), day, eng)) {
        return;
    }
    for (i = 0; i < t->n_heaps && h == NULL; i++) {
        if (t->heaps[i].day == day) {
            h = &t->heaps[i];
        }
    }
    if (h == NULL) {
        t->heaps = esc_realloc(t->heaps, (t->n_heaps + 1) * sizeof(*t->heaps));
        h = &t->heaps[t->n_heaps++];
        memset(h, 0, sizeof(*h));
        h->day = day;
    }
    c = s_heap_slot(h, self->top_posts_n, eng);
    if (c == NULL) {
        return;
    }
    c->rec = rec;
    c->eng = eng;
    c->created_at = r->created_at;
    c->likes = r->likes;
    c->reposts = r->reposts;
    c->replies = r->replies;
    c->followers = r->followers;
    c->sent_milli = r->sent_milli;
    c->blob = s_blob_of(b, r, p, shared);
    c->blob->refs++;
    s_heap_fix(h, c);
}

int
agg_counters_add(agg_counters_t *self, const struct esc_post *p, const char *const *topics,
                 size_t n)
{
    struct s_batch *b = self->open;
    struct s_blob *blob = NULL; /* the post's top-post blob, once a candidate needs it */
    uint8_t id[S_ID_LEN];
    uint32_t tags[S_TAGS_PER_POST];
    uint32_t terms[AGG_TERMS_PER_POST];
    struct s_collect col;
    struct s_rec *r;
    const char *lang;
    double sent;
    int64_t eng;
    uint32_t rec;
    uint32_t lang_sid;
    uint32_t plat_sid;
    uint32_t author = S_NONE;
    uint32_t h_author = 0;
    size_t author_len = 0;
    size_t slen;
    size_t i;
    size_t n_tags = 0;
    size_t n_terms = 0;

    b->processed++;
    if (n == 0) {
        return 1;
    }
    /* the recent ids are a large table (a cache miss or two): their slots are fetched now and
     * read once the post's strings are interned (wasted work for the rare duplicate) */
    s_post_id(p, id);
    s_recent_prefetch(&self->recent, id);
    slen = s_token_ok(p->language, S_LANG_MAX);
    if (slen > 0 && strcmp(p->language, "und") != 0) {
        lang = p->language;
    }
    else {
        slen = s_token_ok(p->lang, S_LANG_MAX);
        lang = slen > 0 ? p->lang : "und";
        slen = slen > 0 ? slen : 3;
    }
    lang_sid = s_intern(&b->st, lang, slen);
    slen = s_token_ok(p->platform, S_PLATFORM_MAX);
    if (slen > 0) {
        plat_sid = s_intern(&b->st, p->platform, slen);
    }
    else {
        plat_sid = s_intern(&b->st, "other", 5);
    }
    if (!self->counters_only) {
        /* the author's slot too is fetched now and read after the terms */
        author_len = p->author != NULL ? strlen(p->author) : 0;
        if (author_len > S_AUTHOR_MAX) {
            author_len = 0;
        }
        if (author_len > 0) {
            h_author = s_str_hash(p->author, author_len);
            s_intern_prefetch(&b->st, h_author);
        }

        /* hashtags: the platform's list folded like terms; without one, the text's #tags.
         * Field by field: a memset would also clear the pending terms (2.4 kB) every post. */
        col.st = &b->st;
        col.out = tags;
        col.n = 0;
        col.max = S_TAGS_PER_POST;
        col.tags_only = 1;
        col.tags = NULL;
        col.n_tags = 0;
        col.bloom_out = 0;
        col.bloom_tags = 0;
        col.defer = 0;
        col.n_pend = 0;
        for (i = 0; i < p->n_hashtags && col.n < S_TAGS_PER_POST; i++) {
            char buf[AGG_TERM_MAX + 2];
            size_t len = strlen(p->hashtags[i]);

            if (len > 0 && len < AGG_TERM_MAX) {
                buf[0] = '#';
                memcpy(buf + 1, p->hashtags[i], len);
                agg_terms_extract(buf, len + 1, NULL, s_on_term, &col);
            }
        }
        n_tags = col.n;
        col.out = terms;
        col.n = 0;
        col.max = AGG_TERMS_PER_POST;
        col.tags_only = 0;
        col.tags = p->n_hashtags == 0 ? tags : NULL;
        col.n_tags = n_tags;
        col.bloom_tags = col.bloom_out; /* the tags kept so far */
        col.bloom_out = 0;
        if (p->text != NULL) {
            col.defer = 1;
            col.n_pend = 0;
            agg_terms_extract(p->text, strlen(p->text), lang, s_on_term_defer, &col);
            s_pend_run(&col);
        }
        if (p->n_hashtags == 0) {
            n_tags = col.n_tags;
        }
        n_terms = col.n;
        if (author_len > 0) {
            author = s_intern_h(&b->st, p->author, author_len, h_author);
        }
    }
    if (s_recent_check_put(&self->recent, id)) {
        self->stats.dup_memory++;
        return 0;
    }
    ESC_ASSERT(b->n_recs < (1u << 31));
    b->recs = s_grow(b->recs, &b->cap_recs, b->n_recs + 1, sizeof(*b->recs));
    rec = (uint32_t)b->n_recs++;
    r = &b->recs[rec];
    memcpy(r->id, id, S_ID_LEN);
    r->created_at = p->created_at;
    r->followers = s_nonneg(p->followers);
    r->likes = s_nonneg(p->likes);
    r->reposts = s_nonneg(p->reposts);
    r->replies = s_nonneg(p->replies);
    eng = r->likes + r->reposts + r->replies;
    r->infl_milli = llround(agg_counters_influence(r->followers, eng) * 1000.0);
    sent = isfinite(p->sentiment) ? p->sentiment : 0.0;
    sent = sent > 1.0 ? 1.0 : (sent < -1.0 ? -1.0 : sent);
    r->sent_milli = (int32_t)lround(sent * 1000.0);
    r->lang = lang_sid;
    r->platform = plat_sid;
    r->author = author;
    r->n_topics = (uint16_t)n;
    r->n_tags = (uint16_t)n_tags;
    r->n_terms = (uint16_t)n_terms;
    r->refs = (uint32_t)b->n_refs;
    b->refs = s_grow(b->refs, &b->cap_refs, b->n_refs + n + n_tags + n_terms, sizeof(*b->refs));
    for (i = 0; i < n; i++) {
        b->refs[b->n_refs++] = s_intern(&b->st, topics[i], strlen(topics[i]));
    }
    memcpy(b->refs + b->n_refs, tags, n_tags * sizeof(*tags));
    b->n_refs += n_tags;
    memcpy(b->refs + b->n_refs, terms, n_terms * sizeof(*terms));
    b->n_refs += n_terms;
    for (i = 0; i < n; i++) {
        struct s_tlist *t = s_tlist_get(b, b->refs[r->refs + i]);

        t->recs = s_grow(t->recs, &t->cap, t->n + 1, sizeof(*t->recs));
        t->recs[t->n++] = rec;
        if (!self->counters_only) {
            s_offer_candidate(self, b, t, rec, p, &blob);
        }
    }
    return 1;
}

void
agg_counters_push_list(agg_counters_t *self, const char *key, const char *value, long max_len)
{
    struct s_batch *b = self->open;
    struct s_list *l;
    size_t pending = b->n_lists + (self->frozen != NULL ? self->frozen->n_lists : 0);

    if (pending >= S_LISTS_MAX && b->n_lists > 0) {
        esc_log_error("pending list pushes at limit, dropping the oldest key=%s max=%d",
                      b->lists[0].key, S_LISTS_MAX);
        esc_free(b->lists[0].key);
        esc_free(b->lists[0].value);
        memmove(b->lists, b->lists + 1, (b->n_lists - 1) * sizeof(*b->lists));
        b->n_lists--;
        self->stats.lost++;
    }
    b->lists = s_grow(b->lists, &b->cap_lists, b->n_lists + 1, sizeof(*b->lists));
    l = &b->lists[b->n_lists++];
    l->key = esc_strdup(key);
    l->value = esc_strdup(value);
    l->max_len = max_len > 0 ? max_len : 1;
    l->done = 0;
}

/* ---- building a part's script call ------------------------------------------------------ */

static void
s_args_reset(struct s_args *a)
{
    a->len = 0;
    a->n = 0;
}

static void
s_arg(struct s_args *a, const char *s, size_t len)
{
    size_t cap_n = a->cap_n;

    a->buf = s_grow(a->buf, &a->cap, a->len + len + 1, 1);
    a->off = s_grow(a->off, &a->cap_n, a->n + 1, sizeof(*a->off));
    if (a->cap_n != cap_n) {
        a->lens = esc_realloc(a->lens, a->cap_n * sizeof(*a->lens));
    }
    if (len > 0) {
        memcpy(a->buf + a->len, s, len);
    }
    a->off[a->n] = a->len;
    a->lens[a->n] = len;
    a->len += len;
    a->n++;
}

static void
s_arg_str(struct s_args *a, const char *s)
{
    s_arg(a, s, strlen(s));
}

static void
s_arg_i64(struct s_args *a, int64_t v)
{
    char buf[24];
    char *e = buf + sizeof(buf);
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

    do {
        *--e = (char)('0' + u % 10);
        u /= 10;
    } while (u > 0);
    if (v < 0) {
        *--e = '-';
    }
    s_arg(a, e, (size_t)(buf + sizeof(buf) - e));
}

/* Appends len bytes of s to the last argument. */
static void
s_arg_more(struct s_args *a, const char *s, size_t len)
{
    a->buf = s_grow(a->buf, &a->cap, a->len + len + 1, 1);
    memcpy(a->buf + a->len, s, len);
    a->len += len;
    a->lens[a->n - 1] += len;
}

/* Appends the decimal v to the last argument (keys that end in a number, without snprintf). */
static void
s_arg_more_i64(struct s_args *a, int64_t v)
{
    char buf[24];
    char *e = buf + sizeof(buf);
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

    do {
        *--e = (char)('0' + u % 10);
        u /= 10;
    } while (u > 0);
    if (v < 0) {
        *--e = '-';
    }
    s_arg_more(a, e, (size_t)(buf + sizeof(buf) - e));
}

/* A milli-unit value as a decimal ("12.345", "-0.050"). */
static void
s_arg_milli(struct s_args *a, int64_t v)
{
    char buf[32];
    char *e = buf + sizeof(buf);
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    int k;

    for (k = 0; k < 3; k++) {
        *--e = (char)('0' + u % 10);
        u /= 10;
    }
    *--e = '.';
    do {
        *--e = (char)('0' + u % 10);
        u /= 10;
    } while (u > 0);
    if (v < 0) {
        *--e = '-';
    }
    s_arg(a, e, (size_t)(buf + sizeof(buf) - e));
}

/* Two strings joined as one argument. */
static void
s_arg_cat(struct s_args *a, const char *x, size_t xl, const char *y, size_t yl)
{
    s_arg(a, x, xl);
    a->buf = s_grow(a->buf, &a->cap, a->len + yl + 1, 1);
    memcpy(a->buf + a->len, y, yl);
    a->len += yl;
    a->lens[a->n - 1] += yl;
}

/* Queues the arguments as one command. */
static void
s_args_append(agg_counters_t *self)
{
    struct s_args *a = &self->ws.args;
    size_t i;

    a->argv = s_grow(a->argv, &a->cap_argv, a->n, sizeof(*a->argv));
    for (i = 0; i < a->n; i++) {
        a->argv[i] = a->buf + a->off[i];
    }
    esc_kv_appendv(self->kv, (int)a->n, a->argv, a->lens);
    self->fst->calls++;
}

static int
s_excluded(const struct s_part *pt, uint32_t rec)
{
    size_t lo = 0;
    size_t hi = pt->n_excl;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;

        if (pt->excl[mid] < rec) {
            lo = mid + 1;
        }
        else {
            hi = mid;
        }
    }
    return lo < pt->n_excl && pt->excl[lo] == rec;
}

static void
s_exclude(struct s_part *pt, uint32_t rec)
{
    size_t i = pt->n_excl;

    if (s_excluded(pt, rec)) {
        return;
    }
    pt->excl = s_grow(pt->excl, &pt->cap_excl, pt->n_excl + 1, sizeof(*pt->excl));
    while (i > 0 && pt->excl[i - 1] > rec) {
        pt->excl[i] = pt->excl[i - 1];
        i--;
    }
    pt->excl[i] = rec;
    pt->n_excl++;
}

/* The aggregation cell of (res, bucket start). */
static uint32_t
s_cell(struct s_ws *ws, int res, int64_t start)
{
    uint64_t key = (1ULL << 63) | ((uint64_t)res << 56) | ((uint64_t)start & ((1ULL << 56) - 1));
    int found;
    uint32_t *v = s_map_put(&ws->cells_m, key, (uint32_t)ws->n_cells, &found);
    struct s_cellagg *c;

    if (found) {
        return *v;
    }
    ws->cells = s_grow(ws->cells, &ws->cap_cells, ws->n_cells + 1, sizeof(*ws->cells));
    c = &ws->cells[ws->n_cells];
    memset(c, 0, sizeof(*c));
    c->res = res;
    c->start = start;
    return (uint32_t)ws->n_cells++;
}

static void
s_dyn_add(struct s_ws *ws, int kind, uint32_t cell, uint32_t sid, int64_t n)
{
    uint64_t key = (1ULL << 63) | ((uint64_t)kind << 60) | ((uint64_t)cell << 32) | sid;
    int found;
    uint32_t *v = s_map_put(&ws->dyn_m, key, (uint32_t)ws->n_dyn, &found);
    struct s_dynagg *d;

    if (found) {
        ws->dyn[*v].n += n;
        return;
    }
    ESC_ASSERT(cell < (1u << 28));
    ws->dyn = s_grow(ws->dyn, &ws->cap_dyn, ws->n_dyn + 1, sizeof(*ws->dyn));
    d = &ws->dyn[ws->n_dyn++];
    d->kind = kind;
    d->cell = cell;
    d->sid = sid;
    d->n = n;
}

/* Adds record r to its minute cell (the coarser cells are summed from the minutes later). */
static void
s_contrib(struct s_ws *ws, const struct s_rec *r)
{
    uint32_t c = s_cell(ws, AGG_RES_MINUTE, s_bucket(r->created_at, AGG_RES_MINUTE));
    int64_t *v = ws->cells[c].v;

    v[F_POSTS]++;
    v[F_REACH] += r->followers;
    v[F_LIKES] += r->likes;
    v[F_REPOSTS] += r->reposts;
    v[F_REPLIES] += r->replies;
    v[F_ENGAGEMENT] += r->likes + r->reposts + r->replies;
    if (r->sent_milli >= (int32_t)lround(AGG_SENTIMENT_POS * 1000)) {
        v[F_POS]++;
    }
    else if (r->sent_milli <= (int32_t)lround(AGG_SENTIMENT_NEG * 1000)) {
        v[F_NEG]++;
    }
    else {
        v[F_NEU]++;
    }
    v[F_SENT] += r->sent_milli;
    s_dyn_add(ws, 0, c, r->lang, 1);
    s_dyn_add(ws, 1, c, r->platform, 1);
}

/* Sums the minute cells into their hour, day and total cells, fields and splits alike. */
static void
s_roll_up(struct s_ws *ws)
{
    size_t n_min = ws->n_cells;
    size_t n_dyn = ws->n_dyn;
    uint32_t *parent;
    size_t c;
    size_t d;
    size_t k;
    int res;

    ws->tmp = s_grow(ws->tmp, &ws->cap_tmp, n_min * 3, sizeof(*ws->tmp));
    parent = ws->tmp;
    for (c = 0; c < n_min; c++) {
        for (res = AGG_RES_HOUR; res <= AGG_RES_TOTAL; res++) {
            int64_t start = res == AGG_RES_TOTAL ? 0 : s_bucket(ws->cells[c].start * 1000, res);
            uint32_t p = s_cell(ws, res, start);

            for (k = 0; k < S_NFIX; k++) {
                ws->cells[p].v[k] += ws->cells[c].v[k];
            }
            parent[c * 3 + (size_t)(res - AGG_RES_HOUR)] = p;
        }
    }
    for (d = 0; d < n_dyn; d++) {
        struct s_dynagg m = ws->dyn[d];

        for (k = 0; k < 3; k++) {
            s_dyn_add(ws, m.kind, parent[m.cell * 3 + k], m.sid, m.n);
        }
    }
}

static void
s_ws_clear(struct s_ws *ws)
{
    s_map_clear(&ws->cells_m);
    s_map_clear(&ws->dyn_m);
    s_map_clear(&ws->hours_m);
    s_map_clear(&ws->ids_m);
    ws->n_cells = 0;
    ws->n_dyn = 0;
    ws->n_hours = 0;
    s_args_reset(&ws->args);
}

/* Builds part pt's script call into ws.args: aggregates its records (leaving out the excluded
 * ones and repeated ids, which are excluded from now on) and orders the sent ids by hour.
 * Returns the number of post ids the call carries; 0 means there is nothing to send. */
#define S_PF_RECS_BUILD 8 /* records fetched ahead by s_build_part */

static size_t
s_build_part(agg_counters_t *self, struct s_batch *b, struct s_part *pt)
{
    struct s_ws *ws = &self->ws;
    struct s_args *a = &ws->args;
    const struct s_tlist *t = &b->tl[pt->tl];
    const char *topic = b->st.strs[t->topic].s;
    size_t n = pt->b - pt->a;
    uint32_t *order;
    uint32_t *start;
    size_t k;
    size_t c;
    size_t d;
    char head[S_KEY_MAX];
    size_t hl;
    size_t tpos;
    char owner[64];
    int fixcol[S_NFIX];
    size_t nf_at;
    size_t nf = 0;

    s_ws_clear(ws);
    pt->n_sent = 0;
    pt->sent = s_grow(pt->sent, &pt->cap_sent, n, sizeof(*pt->sent));
    ws->hour_of = s_grow(ws->hour_of, &ws->cap_hour_of, n, sizeof(*ws->hour_of));
    for (k = pt->a; k < pt->b; k++) {
        uint32_t rec = t->recs[k];
        const struct s_rec *r = &b->recs[rec];
        uint64_t idkey;
        int found;
        uint32_t *v;
        int64_t hour;

        if (k + S_PF_RECS_BUILD < pt->b) {
            /* a topic's records are spread over the batch: fetch them ahead (both lines) */
            const char *ahead = (const char *)&b->recs[t->recs[k + S_PF_RECS_BUILD]];

            __builtin_prefetch(ahead);
            __builtin_prefetch(ahead + sizeof(struct s_rec) - 1);
        }
        if (pt->n_excl > 0 && s_excluded(pt, rec)) {
            continue;
        }
        memcpy(&idkey, r->id, sizeof(idkey));
        v = s_map_put(&ws->ids_m, idkey | (1ULL << 63), rec, &found);
        if (found && s_id_eq(b->recs[*v].id, r->id)) {
            /* the same post twice in one batch: the recent-id set had forgotten it */
            s_exclude(pt, rec);
            self->fst->dup_memory++;
            continue;
        }
        hour = s_bucket(r->created_at, AGG_RES_HOUR);
        v = s_map_put(&ws->hours_m, (uint64_t)hour | (1ULL << 63), (uint32_t)ws->n_hours,
                      &found);
        if (!found) {
            ws->hours = s_grow(ws->hours, &ws->cap_hours, ws->n_hours + 1, sizeof(*ws->hours));
            ws->hour_n = s_grow(ws->hour_n, &ws->cap_hour_n, ws->n_hours + 1,
                                sizeof(*ws->hour_n));
            ws->hours[ws->n_hours] = hour;
            ws->hour_n[ws->n_hours] = 0;
            ws->n_hours++;
        }
        ws->hour_n[*v]++;
        ws->hour_of[pt->n_sent] = *v;
        pt->sent[pt->n_sent++] = rec;
        s_contrib(ws, r);
    }
    if (pt->n_sent == 0) {
        return 0;
    }
    s_roll_up(ws);

    /* ids grouped by hour (stable counting sort), so each group is one seen-mark set */
    ws->tmp = s_grow(ws->tmp, &ws->cap_tmp, pt->n_sent + ws->n_hours, sizeof(*ws->tmp));
    order = ws->tmp;
    start = ws->tmp + pt->n_sent;
    for (c = 0, k = 0; k < ws->n_hours; k++) {
        start[k] = (uint32_t)c;
        c += ws->hour_n[k];
    }
    for (k = 0; k < pt->n_sent; k++) {
        order[start[ws->hour_of[k]]++] = pt->sent[k];
    }
    memcpy(pt->sent, order, pt->n_sent * sizeof(*pt->sent));

    /* the keys of the part: each is "<prefix>:<kind>:{<topic>}" (+ ":<tag>:<start>"), made
     * from one head so that a call costs no snprintf per key */
    hl = (size_t)snprintf(head, sizeof(head), "%s:t:{%s}", self->prefix, topic);
    hl = hl < sizeof(head) ? hl : sizeof(head) - 1;
    tpos = strlen(self->prefix) + 1; /* the kind letter */
    ESC_ASSERT(tpos + 2 <= hl);
    s_arg_str(a, "EVALSHA");
    s_arg_str(a, self->sha);
    s_arg_str(a, "2");
    s_arg(a, head, hl);
    head[tpos] = 'b';
    s_arg(a, head, hl);
    head[tpos] = 'c';
    s_arg_str(a, "T");
    s_arg_i64(a, self->dedupe_window_s);
    s_arg_cat(a, self->instance, strlen(self->instance), ":p", 2);
    s_arg_i64(a, (int64_t)b->seq);
    s_arg_i64(a, (int64_t)(pt - b->parts));
    s_arg_i64(a, (int64_t)ws->n_hours);
    for (c = 0, k = 0; k < ws->n_hours; k++) {
        size_t e = c + ws->hour_n[k];

        s_arg_cat(a, head, tpos - 1, ":seen:", 6);      /* "<prefix>:seen:" */
        s_arg_more(a, head + tpos + 2, hl - tpos - 2); /* "{<topic>}" */
        s_arg_more(a, ":", 1);
        s_arg_more_i64(a, ws->hours[k]);
        s_arg_i64(a, (int64_t)ws->hour_n[k]);
        for (; c < e; c++) {
            s_arg(a, (const char *)b->recs[pt->sent[c]].id, S_ID_LEN);
        }
    }

    /* the fields, named once for all cells: the six classic ones, the other fixed ones that
     * are not zero in some cell, then each language and platform; each cell follows with its
     * delta for every field ("0" where it has none) */
    nf_at = a->n;
    s_arg(a, "000000", 6); /* field count, rewritten below */
    for (k = 0; k < S_NFIX; k++) {
        int used = k <= F_ENGAGEMENT;

        for (c = 0; c < ws->n_cells && !used; c++) {
            used = ws->cells[c].v[k] != 0;
        }
        fixcol[k] = used ? (int)nf : -1;
        if (used) {
            s_arg_str(a, s_fix_names[k]);
            nf++;
        }
    }
    s_map_clear(&ws->cols_m);
    ws->dcol = s_grow(ws->dcol, &ws->cap_dcol, ws->n_dyn, sizeof(*ws->dcol));
    for (d = 0; d < ws->n_dyn; d++) {
        const struct s_dynagg *dy = &ws->dyn[d];
        int found;
        uint32_t *col = s_map_put(&ws->cols_m, (1ULL << 63) | ((uint64_t)dy->kind << 32) | dy->sid,
                                  (uint32_t)nf, &found);

        if (!found) {
            const struct s_str *sv = &b->st.strs[dy->sid];

            s_arg_cat(a, s_dyn_prefix[dy->kind], strlen(s_dyn_prefix[dy->kind]), sv->s, sv->len);
            nf++;
        }
        ws->dcol[d] = *col;
    }
    /* the count fits the 6 bytes reserved for it (a part has < 10^6 fields) */
    snprintf(owner, sizeof(owner), "%zu", nf);
    a->lens[nf_at] = strlen(owner);
    memcpy(a->buf + a->off[nf_at], owner, a->lens[nf_at]);

    ws->row = s_grow(ws->row, &ws->cap_row, nf, sizeof(*ws->row));
    s_arg_i64(a, (int64_t)ws->n_cells);
    for (c = 0; c < ws->n_cells; c++) {
        const struct s_cellagg *cell = &ws->cells[c];

        memset(ws->row, 0, nf * sizeof(*ws->row));
        for (k = 0; k < S_NFIX; k++) {
            if (fixcol[k] >= 0) {
                ws->row[fixcol[k]] = cell->v[k];
            }
        }
        for (d = 0; d < ws->n_dyn; d++) {
            if (ws->dyn[d].cell == c) {
                ws->row[ws->dcol[d]] = ws->dyn[d].n;
            }
        }
        if (cell->res == AGG_RES_TOTAL) {
            head[tpos] = 't'; /* KEYS[1], the same key */
            s_arg(a, head, hl);
            head[tpos] = 'c';
        }
        else {
            s_arg(a, head, hl);
            s_arg_more(a, ":", 1);
            s_arg_more(a, &s_res_tag[cell->res], 1);
            s_arg_more(a, ":", 1);
            s_arg_more_i64(a, cell->start);
        }
        s_arg_i64(a, cell->res == AGG_RES_TOTAL ? 0 : self->retention_s[cell->res]);
        for (k = 0; k < nf; k++) {
            s_arg_i64(a, ws->row[k]);
        }
    }
    return pt->n_sent;
}

/* ---- feeding and writing the top lists -------------------------------------------------- */

/* The top-list sid of batch sid `sid` (interned into the open top lists on first use). */
static uint32_t
s_tsid(agg_counters_t *self, struct s_batch *b, uint32_t sid)
{
    struct s_tops *t = self->tops;
    const struct s_str *e;

    if (b->tsid_gen != t->gen || b->cap_tsid < b->st.n) {
        size_t old = b->tsid_gen == t->gen ? b->cap_tsid : 0;
        size_t i;

        b->tsid = s_grow(b->tsid, &b->cap_tsid, b->st.n, sizeof(*b->tsid));
        for (i = old; i < b->cap_tsid; i++) {
            b->tsid[i] = S_NONE;
        }
        b->tsid_gen = t->gen;
    }
    if (b->tsid[sid] == S_NONE) {
        e = &b->st.strs[sid];
        b->tsid[sid] = s_intern_hw(&t->st, e->s, e->len, e->hash); /* same hash function */
    }
    return b->tsid[sid];
}

/* Prefetch distances, in updates, of the three stages of s_run_prefetch. */
#define S_PF_FAR 8
#define S_PF_MID 4
#define S_PF_NEAR 2
#define S_PF_RECS 4 /* records ahead whose accumulator slots are fetched */

/* Stage 1 and 2 of s_run_prefetch for batch string sid in group: the top-list string
 * table's slot when sid is not mapped yet; else the entries-map slot of (group, tsid), or
 * (stage 2) the entry itself once its slot is there. */
static void
s_entry_prefetch(const struct s_tops *t, const struct s_batch *b, uint32_t group, uint32_t sid,
                 int stage)
{
    uint32_t tsid = b->tsid[sid];
    const struct s_tgroup *g = &t->groups[group];
    size_t i;

    if (tsid == S_NONE) {
        if (stage == 1) {
            s_intern_prefetch(&t->st, b->st.strs[sid].hash);
        }
        return;
    }
    if (g->cap_tab == 0) {
        return;
    }
    i = s_gslot_of(tsid, g->cap_tab);
    if (stage == 1) {
        __builtin_prefetch(&g->tab[i]);
        return;
    }
    while (g->tab[i].entry1 != 0) {
        if (g->tab[i].sid == tsid) {
            __builtin_prefetch(&t->entries[g->tab[i].entry1 - 1]);
            return;
        }
        i = (i + 1) & (g->cap_tab - 1);
    }
}

/* What s_run_apply reads for update u a few updates later, fetched ahead: each look-up is a
 * cache miss (the top-list tables hold every term and author of top_flush_ms), and without
 * this they come one after the other. Stage 0: the batch-to-top-list sid cache of the string
 * and the string; stages 1 and 2: what s_entry_prefetch says. b->tsid must be current (s_tsid
 * called for b). */
static void
s_run_prefetch(const agg_counters_t *self, const struct s_batch *b, uint32_t u, int stage,
               const uint32_t *g)
{
    uint32_t sid = u >> 2;

    if (stage == 0) {
        __builtin_prefetch(&b->tsid[sid]);
        __builtin_prefetch(&b->st.strs[sid]);
        return;
    }
    s_entry_prefetch(self->tops, b, g[u & 3], sid, stage);
}

/* Adds the run of updates gathered by s_run_note (the records of one day of a part, summed
 * per member) to the top lists of groups g, in the order the members first came (so that
 * members get their top-list sids and entries in record order, as when each record was added
 * by itself), and empties the run. */
static void
s_run_apply(agg_counters_t *self, struct s_batch *b, const uint32_t *g)
{
    struct s_tops *t = self->tops;
    struct s_run *run = &self->ws.run;
    size_t n = run->n;
    size_t i;

    for (i = 0; i < n; i++) {
        uint32_t u = run->upd[i];
        uint32_t sid = u >> 2;
        int kind = (int)(u & 3);
        struct s_acc *acc = &b->acc[sid];
        struct s_tentry *e;

        if (i + S_PF_FAR < n) {
            s_run_prefetch(self, b, run->upd[i + S_PF_FAR], 0, g);
        }
        if (i + S_PF_MID < n) {
            s_run_prefetch(self, b, run->upd[i + S_PF_MID], 1, g);
        }
        if (i + S_PF_NEAR < n) {
            s_run_prefetch(self, b, run->upd[i + S_PF_NEAR], 2, g);
        }
        e = s_tops_entry(t, g[kind], s_tsid(self, b, sid));
        if (kind == AGG_TOP_AUTHORS) {
            const struct s_asum *a = &run->auth[acc->author - 1];

            e->posts += a->posts;
            e->reach += a->reach;
            e->eng += a->eng;
            e->infl_milli += a->infl_milli;
            acc->author = 0;
        }
        else {
            e->posts += acc->n[kind - AGG_TOP_HASHTAGS];
            acc->n[kind - AGG_TOP_HASHTAGS] = 0;
        }
    }
    run->n = 0;
    run->n_auth = 0;
}

/* Notes that member sid of list kind (hashtags or terms) is carried by one more post of the
 * run. */
static void
s_run_count(struct s_run *run, struct s_acc *acc, uint32_t sid, int kind)
{
    uint32_t *c = &acc->n[kind - AGG_TOP_HASHTAGS];

    if (*c == 0) {
        run->upd[run->n++] = (sid << 2) | (uint32_t)kind;
    }
    (*c)++;
}

/* Adds record r to the run: its author, hashtags and terms. The run has room for r. */
static void
s_run_note(struct s_run *run, struct s_batch *b, const struct s_rec *r)
{
    const uint32_t *refs = b->refs + r->refs + r->n_topics;
    size_t k;

    if (r->author != S_NONE) {
        struct s_acc *acc = &b->acc[r->author];
        struct s_asum *a;

        if (acc->author == 0) {
            run->upd[run->n++] = (r->author << 2) | AGG_TOP_AUTHORS;
            a = &run->auth[run->n_auth++];
            memset(a, 0, sizeof(*a));
            acc->author = (uint32_t)run->n_auth;
        }
        a = &run->auth[acc->author - 1];
        a->posts++;
        a->reach += r->followers;
        a->eng += r->likes + r->reposts + r->replies;
        a->infl_milli += r->infl_milli;
    }
    for (k = 0; k < r->n_tags; k++) {
        s_run_count(run, &b->acc[refs[k]], refs[k], AGG_TOP_HASHTAGS);
    }
    for (k = r->n_tags; k < (size_t)r->n_tags + r->n_terms; k++) {
        s_run_count(run, &b->acc[refs[k]], refs[k], AGG_TOP_TERMS);
    }
}

static void s_tops_prune(agg_counters_t *self, struct s_tops *t);

/* Part pt is in Redis: its posts and top-post candidates go into the open top lists (pruned
 * first when they hold too many entries). The records' authors, hashtags and terms are first
 * summed per member over each run of records of one day (per batch string, in b->acc: a
 * look-up in a table of the batch's size), so the large top-list tables are looked up once
 * per member and run instead of once per post. */
static void
s_part_applied(agg_counters_t *self, struct s_batch *b, struct s_part *pt)
{
    struct s_tops *t = self->tops;
    struct s_run *run = &self->ws.run;
    struct s_tlist *tl = &b->tl[pt->tl];
    uint32_t topic = s_tsid(self, b, tl->topic);
    uint32_t lo = tl->recs[pt->a];
    uint32_t hi = tl->recs[pt->b - 1];
    int64_t day = INT64_MIN;
    uint32_t g[3] = { 0, 0, 0 };
    size_t need = pt->n_sent * (1 + (size_t)S_TAGS_PER_POST + AGG_TERMS_PER_POST);
    size_t i;
    size_t k;

    if (t->n_entries >= t->prune_at) {
        s_tops_prune(self, t);
    }
    ESC_ASSERT(b->st.n < (1u << 30)); /* a sid and a kind share an update's 32 bits */
    if (b->cap_acc < b->st.n) {
        size_t old = b->cap_acc;

        b->acc = s_grow(b->acc, &b->cap_acc, b->st.n, sizeof(*b->acc));
        memset(b->acc + old, 0, (b->cap_acc - old) * sizeof(*b->acc));
    }
    run->upd = s_grow(run->upd, &run->cap_upd, need, sizeof(*run->upd));
    run->auth = s_grow(run->auth, &run->cap_auth, pt->n_sent, sizeof(*run->auth));
    run->n = 0;
    run->n_auth = 0;
    for (i = 0; i < pt->n_sent; i++) {
        const struct s_rec *r = &b->recs[pt->sent[i]];
        int64_t d = s_bucket(r->created_at, AGG_RES_DAY);

        /* a topic's records are spread over the batch: each step below is a cache miss */
        if (i + 3 * S_PF_RECS < pt->n_sent) {
            const char *ahead = (const char *)&b->recs[pt->sent[i + 3 * S_PF_RECS]];

            __builtin_prefetch(ahead);
            __builtin_prefetch(ahead + sizeof(struct s_rec) - 1); /* it may span two lines */
        }
        if (i + 2 * S_PF_RECS < pt->n_sent) {
            const struct s_rec *ahead = &b->recs[pt->sent[i + 2 * S_PF_RECS]];
            const char *from = (const char *)(b->refs + ahead->refs + ahead->n_topics);
            const char *to = (const char *)(b->refs + ahead->refs + ahead->n_topics
                                            + ahead->n_tags + ahead->n_terms);

            for (; from < to; from += 64) {
                __builtin_prefetch(from);
            }
            __builtin_prefetch(to - 1); /* the last line, when the refs start mid-line */
        }
        if (i + S_PF_RECS < pt->n_sent) {
            const struct s_rec *ahead = &b->recs[pt->sent[i + S_PF_RECS]];
            const uint32_t *refs = b->refs + ahead->refs + ahead->n_topics;

            if (ahead->author != S_NONE) {
                __builtin_prefetch(&b->acc[ahead->author]);
            }
            for (k = 0; k < (size_t)ahead->n_tags + ahead->n_terms; k++) {
                __builtin_prefetch(&b->acc[refs[k]]);
            }
        }
        if (d != day) {
            s_run_apply(self, b, g);
            day = d;
            g[AGG_TOP_AUTHORS] = s_tops_group(t, topic, AGG_TOP_AUTHORS, d);
            g[AGG_TOP_HASHTAGS] = s_tops_group(t, topic, AGG_TOP_HASHTAGS, d);
            g[AGG_TOP_TERMS] = s_tops_group(t, topic, AGG_TOP_TERMS, d);
        }
        s_run_note(run, b, r);
    }
    s_run_apply(self, b, g);
    for (i = 0; i < tl->n_heaps; i++) {
        struct s_heap *bh = &tl->heaps[i];

        for (k = 0; k < bh->n; k++) {
            struct s_cand *c = &bh->c[k];
            struct s_tgroup *gr;
            struct s_cand *slot;
            uint32_t gi;

            if (c->blob == NULL || c->rec < lo || c->rec > hi || s_excluded(pt, c->rec)) {
                continue;
            }
            gi = s_tops_group(t, topic, AGG_TOP_POSTS, bh->day); /* may move t->groups */
            gr = &t->groups[gi];
            slot = s_heap_slot(&gr->heap, self->top_posts_n, c->eng);
            if (slot != NULL) {
                *slot = *c;
                c->blob = NULL; /* moved */
                s_heap_fix(&gr->heap, slot);
            }
        }
    }
}

static int64_t
s_entry_score(const struct s_tentry *e, int kind)
{
    return kind == AGG_TOP_AUTHORS ? e->infl_milli : e->posts;
}

/* qsort has no context argument: the table being sorted (single-threaded). */
static const struct s_tops *s_sort_tops;

/* Best first: higher score, then lower sid (deterministic). */
static int
s_cmp_entry(const void *pa, const void *pb)
{
    const struct s_tentry *a = &s_sort_tops->entries[*(const uint32_t *)pa];
    const struct s_tentry *b = &s_sort_tops->entries[*(const uint32_t *)pb];
    int kind = s_sort_tops->groups[a->group].kind;
    int64_t sa = s_entry_score(a, kind);
    int64_t sb = s_entry_score(b, kind);

    if (sa != sb) {
        return sa > sb ? -1 : 1;
    }
    return a->sid < b->sid ? -1 : (a->sid > b->sid ? 1 : 0);
}

static void
s_swap_u32(uint32_t *a, uint32_t *b)
{
    uint32_t x = *a;

    *a = *b;
    *b = x;
}

/* Moves the k best entries of idx[0..n) (s_cmp_entry order, a total order: the set is the same
 * whatever the algorithm) to its front, in no particular order: quickselect, O(n) on average,
 * where sorting the whole list cost O(n log n) and a temporary buffer. */
static void
s_select_best(const struct s_tops *t, uint32_t *idx, size_t n, size_t k)
{
    size_t lo = 0;
    size_t hi = n; /* the k-th best lies in [lo, hi) */

    if (k == 0 || k >= n) {
        return;
    }
    s_sort_tops = t;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        uint32_t pivot;
        size_t store = lo;
        size_t i;

        /* median of three as the pivot, moved to the end */
        if (s_cmp_entry(&idx[mid], &idx[lo]) < 0) {
            s_swap_u32(&idx[mid], &idx[lo]);
        }
        if (s_cmp_entry(&idx[hi - 1], &idx[lo]) < 0) {
            s_swap_u32(&idx[hi - 1], &idx[lo]);
        }
        if (s_cmp_entry(&idx[mid], &idx[hi - 1]) < 0) {
            s_swap_u32(&idx[mid], &idx[hi - 1]);
        }
        pivot = idx[hi - 1];
        for (i = lo; i < hi - 1; i++) {
            if (s_cmp_entry(&idx[i], &pivot) < 0) {
                s_swap_u32(&idx[i], &idx[store]);
                store++;
            }
        }
        s_swap_u32(&idx[hi - 1], &idx[store]);
        /* [lo, store) better than the pivot, now at store; (store, hi) worse */
        if (store + 1 == k || store == k) {
            break;
        }
        if (store + 1 < k) {
            lo = store + 1;
        }
        else {
            hi = store;
        }
    }
    s_sort_tops = NULL;
}

/* Bounds t's memory: once it holds prune_at entries, every author, hashtag and term list keeps
 * only its best members (the ones a write would send first) and forgets the others, so the
 * tables hold at most about top_max_entries / 2 entries after a prune. A list keeps
 * min(2 x top_flush_max, top_max_entries / (2 x lists)) members, at least S_PRUNE_KEEP_MIN;
 * when that floor keeps more than half the budget (very many lists) the next prune waits for
 * twice as many entries, so prunes stay rare. What is forgotten is the tail of the period:
 * members that would not have made the written part of their list (or would have made it
 * only late in the period) lose this period's counts before the next top-list write. */
static void
s_tops_prune(agg_counters_t *self, struct s_tops *t)
{
    size_t lists = 0;
    size_t keep;
    size_t before = t->n_entries;
    size_t i;
    size_t j;

    for (i = 0; i < t->n_groups; i++) {
        if (t->groups[i].kind != AGG_TOP_POSTS && t->groups[i].n > 0) {
            lists++;
        }
    }
    keep = self->top_max_entries / (2 * (lists > 0 ? lists : 1));
    if (keep > 2 * self->top_flush_max) {
        keep = 2 * self->top_flush_max;
    }
    if (keep < S_PRUNE_KEEP_MIN) {
        keep = S_PRUNE_KEEP_MIN;
    }
    /* drop the tail of every long list: its entries get sid S_NONE */
    for (i = 0; i < t->n_groups; i++) {
        struct s_tgroup *g = &t->groups[i];

        if (g->kind == AGG_TOP_POSTS || g->n <= keep) {
            continue;
        }
        s_select_best(t, g->entries, g->n, keep);
        for (j = keep; j < g->n; j++) {
            t->entries[g->entries[j]].sid = S_NONE;
        }
    }
    /* compact the entries, then index them again */
    for (i = 0; i < t->n_groups; i++) {
        if (t->groups[i].kind != AGG_TOP_POSTS) {
            t->groups[i].n = 0;
        }
    }
    for (i = 0, j = 0; i < t->n_entries; i++) {
        struct s_tentry *e = &t->entries[i];
        struct s_tgroup *g;

        if (e->sid == S_NONE) {
            continue;
        }
        t->entries[j] = *e;
        e = &t->entries[j];
        g = &t->groups[e->group];
        g->entries[g->n++] = (uint32_t)j;
        j++;
    }
    t->n_entries = j;
    for (i = 0; i < t->n_groups; i++) {
        if (t->groups[i].kind != AGG_TOP_POSTS && t->groups[i].cap_tab > 0) {
            s_tgroup_index(t, &t->groups[i], t->groups[i].n);
        }
    }
    t->prune_at = j * 2 > self->top_max_entries ? j * 2 : self->top_max_entries;
    self->fst->top_prunes++;
    esc_log_debug("top lists pruned entries=%zu kept=%zu lists=%zu per_list=%zu", before, j,
                  lists, keep);
}

/* Groups the frozen top lists by topic, for one call per topic. */
static void
s_tops_freeze(agg_counters_t *self)
{
    struct s_tops *t = self->tops;
    struct s_map by_topic;
    size_t i;

    self->tops_frozen = t;
    self->tops = self->tops_spare != NULL ? self->tops_spare : s_tops_new(self);
    self->tops_spare = NULL;
    t->seq = ++self->seq;
    s_map_init(&by_topic);
    t->tt = esc_calloc(t->n_groups > 0 ? t->n_groups : 1, sizeof(*t->tt));
    for (i = 0; i < t->n_groups; i++) {
        int found;
        uint32_t *v = s_map_put(&by_topic, (1ULL << 63) | t->groups[i].topic,
                                (uint32_t)t->n_tt, &found);
        struct s_ttopic *tt = &t->tt[*v];

        if (!found) {
            tt->topic = t->groups[i].topic;
            t->n_tt++;
        }
        tt->groups = s_grow(tt->groups, &tt->cap, tt->n + 1, sizeof(*tt->groups));
        tt->groups[tt->n++] = (uint32_t)i;
    }
    s_map_fini(&by_topic);
}

/* Appends the top-list call of frozen topic tt. */
static void
s_append_tops(agg_counters_t *self, struct s_tops *t, const struct s_ttopic *tt)
{
    struct s_args *a = &self->ws.args;
    const char *topic = t->st.strs[tt->topic].s;
    char key[S_KEY_MAX];
    char info[S_KEY_MAX + 8];
    size_t n_lists = 0;
    size_t n_posts = 0;
    size_t i;
    size_t k;

    s_args_reset(a);
    s_arg_str(a, "EVALSHA");
    s_arg_str(a, self->sha);
    s_arg_str(a, "2");
    s_arg_str(a, agg_counters_key(self->prefix, topic, AGG_RES_TOTAL, 0, key, sizeof(key)));
    snprintf(key, sizeof(key), "%s:b:{%s}", self->prefix, topic);
    s_arg_str(a, key);
    s_arg_str(a, "X");
    s_arg_str(a, self->instance);
    s_arg_i64(a, (int64_t)t->seq);
    snprintf(key, sizeof(key), "%s:post:{%s}:", self->prefix, topic);
    s_arg_str(a, key);
    for (i = 0; i < tt->n; i++) {
        const struct s_tgroup *g = &t->groups[tt->groups[i]];

        if (g->kind == AGG_TOP_POSTS) {
            n_posts += g->heap.n;
        }
        else if (g->n > 0) {
            n_lists++;
        }
    }
    s_arg_i64(a, (int64_t)n_lists);
    for (i = 0; i < tt->n; i++) {
        struct s_tgroup *g = &t->groups[tt->groups[i]];
        size_t take = g->n < self->top_flush_max ? g->n : self->top_flush_max;

        if (g->kind == AGG_TOP_POSTS || g->n == 0) {
            continue;
        }
        if (g->n > take) {
            s_select_best(t, g->entries, g->n, take);
        }
        agg_counters_top_key(self->prefix, topic, (enum agg_top)g->kind, g->day * 1000, key,
                             sizeof(key));
        s_arg_str(a, key);
        if (g->kind == AGG_TOP_AUTHORS) {
            snprintf(info, sizeof(info), "%s:info", key);
            s_arg_str(a, info);
        }
        else {
            s_arg(a, "", 0);
        }
        s_arg_i64(a, self->retention_s[AGG_RES_DAY]);
        s_arg_i64(a, (int64_t)self->top_n);
        s_arg_i64(a, (int64_t)take);
        for (k = 0; k < take; k++) {
            const struct s_tentry *e = &t->entries[g->entries[k]];
            const struct s_str *m = &t->st.strs[e->sid];

            s_arg(a, m->s, m->len);
            if (g->kind == AGG_TOP_AUTHORS) {
                s_arg_milli(a, e->infl_milli);
                s_arg_i64(a, e->posts);
                s_arg_i64(a, e->reach);
                s_arg_i64(a, e->eng);
            }
            else {
                s_arg_i64(a, e->posts);
            }
        }
    }
    s_arg_i64(a, (int64_t)n_posts);
    for (i = 0; i < tt->n; i++) {
        const struct s_tgroup *g = &t->groups[tt->groups[i]];

        if (g->kind != AGG_TOP_POSTS) {
            continue;
        }
        agg_counters_top_key(self->prefix, topic, AGG_TOP_POSTS, g->day * 1000, key,
                             sizeof(key));
        for (k = 0; k < g->heap.n; k++) {
            const struct s_cand *c = &g->heap.c[k];
            const char *f[7];
            size_t j;

            f[0] = c->blob->s; /* member, text, url, author, author_name, platform, lang */
            for (j = 1; j < 7; j++) {
                f[j] = f[j - 1] + strlen(f[j - 1]) + 1;
            }
            s_arg_str(a, key);
            s_arg_i64(a, self->retention_s[AGG_RES_DAY]);
            s_arg_i64(a, (int64_t)self->top_posts_n);
            s_arg_str(a, f[0]);
            s_arg_i64(a, c->eng);
            s_arg_i64(a, 13);
            s_arg_str(a, "text");
            s_arg_str(a, f[1]);
            s_arg_str(a, "url");
            s_arg_str(a, f[2]);
            s_arg_str(a, "author");
            s_arg_str(a, f[3]);
            s_arg_str(a, "author_name");
            s_arg_str(a, f[4]);
            s_arg_str(a, "platform");
            s_arg_str(a, f[5]);
            s_arg_str(a, "language");
            s_arg_str(a, f[6]);
            s_arg_str(a, "created_at");
            s_arg_i64(a, c->created_at);
            s_arg_str(a, "likes");
            s_arg_i64(a, c->likes);
            s_arg_str(a, "reposts");
            s_arg_i64(a, c->reposts);
            s_arg_str(a, "replies");
            s_arg_i64(a, c->replies);
            s_arg_str(a, "engagement");
            s_arg_i64(a, c->eng);
            s_arg_str(a, "followers");
            s_arg_i64(a, c->followers);
            s_arg_str(a, "sentiment");
            s_arg_milli(a, c->sent_milli);
        }
    }
    s_args_append(self);
}

/* ---- flushing --------------------------------------------------------------------------- */

static esc_rc
s_load_script(agg_counters_t *self)
{
    struct esc_kv_val v;
    esc_rc rc = esc_kv_cmd(self->kv, &v, "SCRIPT LOAD %s", s_script);

    if (rc != ESC_OK) {
        return ESC_RETRY;
    }
    if (v.type != ESC_KV_STR || v.len == 0 || v.len >= sizeof(self->sha)) {
        esc_log_error("redis refused the flush script reply_type=%d err=\"%s\"", (int)v.type,
                      v.type == ESC_KV_ERROR ? v.str : "");
        esc_kv_val_fini(&v);
        return ESC_RETRY;
    }
    esc_strlcpy(self->sha, v.str, sizeof(self->sha));
    esc_kv_val_fini(&v);
    self->fst->script_loads++;
    esc_log_debug("flush script loaded sha=%s", self->sha);
    return ESC_OK;
}

/* The mark key of key: same Redis Cluster slot (reuses its hash tag, or makes key the tag). */
static void
s_mark_key(const char *key, char *out, size_t outsz)
{
    const char *open = strchr(key, '{');
    const char *close = open != NULL ? strchr(open + 1, '}') : NULL;

    if (close != NULL && close > open + 1) {
        snprintf(out, outsz, "%s:b", key);
    }
    else {
        snprintf(out, outsz, "{%s}:b", key);
    }
}

static void
s_freeze(agg_counters_t *self)
{
    struct s_batch *b = self->open;
    size_t i;
    size_t n = 0;

    ESC_ASSERT(self->frozen == NULL);
    self->frozen = b;
    self->open = self->spare != NULL ? self->spare : s_batch_new();
    self->spare = NULL;
    b->seq = ++self->seq;
    for (i = 0; i < b->n_tl; i++) {
        n += (b->tl[i].n + AGG_PART_POSTS - 1) / AGG_PART_POSTS;
    }
    b->parts = s_grow(b->parts, &b->cap_parts, n > 0 ? n : 1, sizeof(*b->parts));
    memset(b->parts, 0, (n > 0 ? n : 1) * sizeof(*b->parts));
    for (i = 0; i < b->n_tl; i++) {
        size_t a;

        for (a = 0; a < b->tl[i].n; a += AGG_PART_POSTS) {
            struct s_part *pt = &b->parts[b->n_parts++];

            pt->tl = (uint32_t)i;
            pt->a = (uint32_t)a;
            pt->b = (uint32_t)(a + AGG_PART_POSTS < b->tl[i].n ? a + AGG_PART_POSTS
                                                                : b->tl[i].n);
        }
    }
}

/* Appends the list call for the not yet written entries with the key of entry first. */
static void
s_append_list(agg_counters_t *self, struct s_batch *b, size_t first)
{
    struct s_args *a = &self->ws.args;
    char mark[S_KEY_MAX];
    size_t i;
    long max_len = 1;

    s_args_reset(a);
    s_mark_key(b->lists[first].key, mark, sizeof(mark));
    s_arg_str(a, "EVALSHA");
    s_arg_str(a, self->sha);
    s_arg_str(a, "2");
    s_arg_str(a, b->lists[first].key);
    s_arg_str(a, mark);
    s_arg_str(a, "L");
    s_arg_str(a, self->instance);
    s_arg_i64(a, (int64_t)b->seq);
    for (i = first; i < b->n_lists; i++) {
        if (!b->lists[i].done && strcmp(b->lists[i].key, b->lists[first].key) == 0
            && b->lists[i].max_len > max_len) {
            max_len = b->lists[i].max_len;
        }
    }
    s_arg_i64(a, max_len);
    for (i = first; i < b->n_lists; i++) {
        if (!b->lists[i].done && strcmp(b->lists[i].key, b->lists[first].key) == 0) {
            s_arg_str(a, b->lists[i].value);
        }
    }
    s_args_append(self);
}

/* Marks every entry with the key of entry first as written. */
static void
s_lists_done(struct s_batch *b, size_t first)
{
    const char *key = b->lists[first].key;
    size_t i;

    for (i = b->n_lists; i > first; i--) {
        if (!b->lists[i - 1].done && strcmp(b->lists[i - 1].key, key) == 0) {
            b->lists[i - 1].done = 1;
        }
    }
}

/* What one reply said about the call it answers. */
enum s_outcome {
    S_APPLIED,  /* done (now, or earlier by this very call) */
    S_DUPS,     /* topic part: some ids were already counted; nothing written */
    S_NOSCRIPT, /* Redis does not know the script (restarted, SCRIPT FLUSH) */
    S_REJECTED, /* any other error: logged, dropped */
};

static enum s_outcome
s_outcome(agg_counters_t *self, const struct esc_kv_val *v, const char *what)
{
    char q[200];

    if (v->type == ESC_KV_INT) {
        return S_APPLIED;
    }
    if (v->type == ESC_KV_ARRAY) {
        return S_DUPS;
    }
    if (v->type == ESC_KV_ERROR && strncmp(v->str, "NOSCRIPT", 8) == 0) {
        return S_NOSCRIPT;
    }
    esc_log_error("redis rejected a flush call, its counts are dropped what=%s err=%s", what,
                  esc_log_quote(q, sizeof(q), v->type == ESC_KV_ERROR ? v->str : "?", 150));
    self->fst->lost++;
    return S_REJECTED;
}

enum s_call_kind { S_CALL_PART, S_CALL_LIST, S_CALL_TOPS };

struct s_call {
    enum s_call_kind kind;
    size_t index;
};

/* Reads the replies of a round and records what they say. */
static void
s_round_replies(agg_counters_t *self, struct s_batch *b, struct s_tops *t,
                const struct s_call *calls, struct esc_kv_val *rep, size_t n_calls)
{
    size_t i;
    size_t k;

    for (i = 0; i < n_calls; i++) {
        enum s_outcome o;

        if (calls[i].kind == S_CALL_PART) {
            struct s_part *pt = &b->parts[calls[i].index];

            o = s_outcome(self, &rep[i], b->st.strs[b->tl[pt->tl].topic].s);
            if (o == S_DUPS) {
                for (k = 0; k < rep[i].n; k++) {
                    long long idx = rep[i].elem[k].integer;

                    if (rep[i].elem[k].type == ESC_KV_INT && idx >= 0
                        && (size_t)idx < pt->n_sent) {
                        s_exclude(pt, pt->sent[idx]);
                        self->fst->dup_redis++;
                    }
                }
            }
            if (o == S_APPLIED && !self->counters_only) {
                s_part_applied(self, b, pt);
            }
            pt->done = o == S_APPLIED || o == S_REJECTED;
        }
        else if (calls[i].kind == S_CALL_LIST) {
            o = s_outcome(self, &rep[i], b->lists[calls[i].index].key);
            if (o != S_NOSCRIPT) {
                s_lists_done(b, calls[i].index);
            }
        }
        else {
            o = s_outcome(self, &rep[i], "top lists");
            t->tt[calls[i].index].done = o != S_NOSCRIPT;
        }
        if (o == S_NOSCRIPT) {
            self->sha[0] = '\0';
        }
        esc_kv_val_fini(&rep[i]);
    }
}

/* One pipelined round: up to S_ROUND_CALLS pending calls of batch b (parts, then lists) or of
 * frozen top lists t (either may be NULL). Returns ESC_RETRY when the round trip failed
 * (nothing is known about what ran: the calls are sent again, their marks tell). */
static esc_rc
s_round(agg_counters_t *self, struct s_batch *b, struct s_tops *t, size_t max_calls)
{
    struct s_call calls[S_ROUND_CALLS];
    struct esc_kv_val rep[S_ROUND_CALLS];
    size_t n_calls = 0;
    size_t bytes = 0;
    size_t i;
    size_t k;

    for (i = 0; b != NULL && i < b->n_parts && n_calls < max_calls && bytes < S_ROUND_BYTES;
         i++) {
        struct s_part *pt = &b->parts[i];

        if (pt->done) {
            continue;
        }
        if (s_build_part(self, b, pt) == 0) {
            pt->done = 1; /* every record of the part was a duplicate */
            continue;
        }
        bytes += self->ws.args.len;
        s_args_append(self);
        calls[n_calls].kind = S_CALL_PART;
        calls[n_calls++].index = i;
    }
    for (i = 0; b != NULL && i < b->n_lists && n_calls < max_calls; i++) {
        int seen = 0;

        for (k = 0; k < i && !seen; k++) {
            seen = !b->lists[k].done && strcmp(b->lists[k].key, b->lists[i].key) == 0;
        }
        if (!b->lists[i].done && !seen) {
            s_append_list(self, b, i);
            calls[n_calls].kind = S_CALL_LIST;
            calls[n_calls++].index = i;
        }
    }
    for (i = 0; t != NULL && i < t->n_tt && n_calls < max_calls && bytes < S_ROUND_BYTES;
         i++) {
        if (!t->tt[i].done) {
            s_append_tops(self, t, &t->tt[i]);
            bytes += self->ws.args.len;
            calls[n_calls].kind = S_CALL_TOPS;
            calls[n_calls++].index = i;
        }
    }
    if (n_calls == 0) {
        return ESC_OK;
    }
    if (esc_kv_exec_replies(self->kv, rep, n_calls, NULL) != ESC_OK) {
        return ESC_RETRY;
    }
    s_round_replies(self, b, t, calls, rep, n_calls);
    return ESC_OK;
}

/* Calls of b (or t) not acknowledged yet. */
static size_t
s_calls_left(const struct s_batch *b, const struct s_tops *t)
{
    size_t n = 0;
    size_t i;

    for (i = 0; b != NULL && i < b->n_parts; i++) {
        n += !b->parts[i].done;
    }
    for (i = 0; b != NULL && i < b->n_lists; i++) {
        n += !b->lists[i].done;
    }
    for (i = 0; t != NULL && i < t->n_tt; i++) {
        n += !t->tt[i].done;
    }
    return n;
}

/* Rounds until b (or t) is written. Rounds in which no call was acknowledged (duplicates
 * found, the script reloaded) count against a limit, so a flush always ends; what is left goes
 * on at the next flush. */
static esc_rc
s_rounds(agg_counters_t *self, struct s_batch *b, struct s_tops *t)
{
    size_t left = s_calls_left(b, t);
    int stuck = 0;

    while (left > 0) {
        size_t now;

        if (self->sha[0] == '\0' && s_load_script(self) != ESC_OK) {
            return ESC_RETRY;
        }
        if (s_round(self, b, t, S_ROUND_CALLS) != ESC_OK) {
            return ESC_RETRY;
        }
        now = s_calls_left(b, t);
        if (now == left && ++stuck == 8) {
            esc_log_warn("flush not finished, continued at the next flush calls_left=%zu", now);
            return ESC_RETRY;
        }
        left = now;
    }
    return ESC_OK;
}

/* Writes the top lists when they are due (or final): the frozen ones first, if any. */
static esc_rc
s_tops_step(agg_counters_t *self, int final)
{
    int64_t now = esc_mono_ms();

    if (self->tops_frozen == NULL) {
        if (s_tops_empty(self->tops) || (!final && now < self->next_tops_ms)) {
            return ESC_OK;
        }
        s_tops_freeze(self);
    }
    if (!final && self->top_step_ms > 0) {
        /* a slice: small rounds until the time is up; the rest at the next flush */
        int64_t until = now + self->top_step_ms;
        size_t left = s_calls_left(NULL, self->tops_frozen);
        int stuck = 0;

        while (left > 0 && esc_mono_ms() < until && stuck < 8) {
            size_t after;

            if (self->sha[0] == '\0' && s_load_script(self) != ESC_OK) {
                return ESC_RETRY;
            }
            if (s_round(self, NULL, self->tops_frozen, S_TOPS_STEP_CALLS) != ESC_OK) {
                return ESC_RETRY;
            }
            after = s_calls_left(NULL, self->tops_frozen);
            stuck = after == left ? stuck + 1 : 0;
            left = after;
        }
        if (left > 0) {
            return ESC_OK;
        }
    }
    else if (s_rounds(self, NULL, self->tops_frozen) != ESC_OK) {
        return ESC_RETRY;
    }
    s_tops_reset(self, self->tops_frozen);
    s_tops_free(&self->tops_spare);
    self->tops_spare = self->tops_frozen;
    self->tops_frozen = NULL;
    self->next_tops_ms = now + self->top_flush_ms;
    return ESC_OK;
}

/* The last call of a batch: adds its processed count, once. */
static esc_rc
s_send_processed(agg_counters_t *self, struct s_batch *b)
{
    struct s_args *a = &self->ws.args;
    struct esc_kv_val v;
    char key[S_KEY_MAX - 8]; /* room for the mark's "{...}:b" within S_KEY_MAX */
    char mark[S_KEY_MAX];
    enum s_outcome o;
    size_t i;

    if (b->processed == 0) {
        b->processed_done = 1;
        return ESC_OK;
    }
    if (self->sha[0] == '\0' && s_load_script(self) != ESC_OK) {
        return ESC_RETRY;
    }
    snprintf(key, sizeof(key), "%s:agg:processed", self->prefix);
    s_mark_key(key, mark, sizeof(mark));
    s_args_reset(a);
    s_arg_str(a, "EVALSHA");
    s_arg_str(a, self->sha);
    s_arg_str(a, "2");
    s_arg_str(a, key);
    s_arg_str(a, mark);
    s_arg_str(a, "P");
    s_arg_str(a, self->instance);
    s_arg_i64(a, (int64_t)b->seq);
    s_arg_i64(a, b->processed);
    a->argv = s_grow(a->argv, &a->cap_argv, a->n, sizeof(*a->argv));
    for (i = 0; i < a->n; i++) {
        a->argv[i] = a->buf + a->off[i];
    }
    self->fst->calls++;
    if (esc_kv_cmdv(self->kv, &v, (int)a->n, a->argv, a->lens) != ESC_OK) {
        return ESC_RETRY;
    }
    o = s_outcome(self, &v, "processed");
    esc_kv_val_fini(&v);
    if (o == S_NOSCRIPT) {
        self->sha[0] = '\0';
        return ESC_RETRY;
    }
    b->processed_done = 1;
    return ESC_OK;
}

/* Sends the processed call until it is acknowledged (a NOSCRIPT reply reloads the script and
 * tries once more). */
static esc_rc
s_processed_step(agg_counters_t *self, struct s_batch *b)
{
    int tries;

    for (tries = 0; tries < 2 && !b->processed_done; tries++) {
        if (s_send_processed(self, b) != ESC_OK && self->sha[0] != '\0') {
            return ESC_RETRY;
        }
    }
    return b->processed_done ? ESC_OK : ESC_RETRY;
}

/* Writes the frozen batch: its parts and lists, the top lists when due, the processed count
 * last (counts and due top lists are in first). The batch is left for s_batch_written. */
static esc_rc
s_write_batch(agg_counters_t *self, int final)
{
    struct s_batch *b = self->frozen;

    if (s_rounds(self, b, NULL) != ESC_OK || s_tops_step(self, final) != ESC_OK
        || s_processed_step(self, b) != ESC_OK) {
        self->fst->failed_flushes++;
        return ESC_RETRY;
    }
    self->fst->flushed_posts += (uint64_t)b->processed;
    self->fst->flushes++;
    return ESC_OK;
}

/* The frozen batch is in Redis: it becomes the spare. */
static void
s_batch_written(agg_counters_t *self)
{
    s_batch_reset(self->frozen);
    s_batch_free(&self->spare);
    self->spare = self->frozen;
    self->frozen = NULL;
}

/* The top lists alone, when due. */
static esc_rc
s_write_tops(agg_counters_t *self, int final)
{
    if (s_tops_step(self, final) != ESC_OK) {
        self->fst->failed_flushes++;
        return ESC_RETRY;
    }
    return ESC_OK;
}

esc_rc
agg_counters_flush(agg_counters_t *self, int final)
{
    int i;

    ESC_ASSERT(!self->threaded);
    for (i = 0; i < 2; i++) {
        if (self->frozen == NULL) {
            if (s_batch_empty(self->open)) {
                break;
            }
            s_freeze(self);
        }
        if (s_write_batch(self, final) != ESC_OK) {
            return ESC_RETRY;
        }
        s_batch_written(self);
    }
    return s_write_tops(self, final);
}

/* ---- the flush thread ------------------------------------------------------------------- */

static void
s_stats_add(struct agg_counters_stats *to, struct agg_counters_stats *from)
{
    to->flushed_posts += from->flushed_posts;
    to->flushes += from->flushes;
    to->failed_flushes += from->failed_flushes;
    to->lost += from->lost;
    to->dup_memory += from->dup_memory;
    to->dup_redis += from->dup_redis;
    to->script_loads += from->script_loads;
    to->calls += from->calls;
    to->top_prunes += from->top_prunes;
    memset(from, 0, sizeof(*from));
}

/* Runs the flushes handed over by agg_counters_flush_start until told to stop. Writes the
 * frozen batch (the batch itself is recycled by the loop thread when it collects) or, without
 * one, the top lists when due. */
static void *
s_thread_main(void *arg)
{
    agg_counters_t *self = arg;

    pthread_mutex_lock(&self->mu);
    for (;;) {
        int final;
        esc_rc rc;
        ssize_t w;

        while (!self->job && !self->stop) {
            pthread_cond_wait(&self->cv, &self->mu);
        }
        if (self->stop) {
            break;
        }
        final = self->job_final;
        pthread_mutex_unlock(&self->mu);
        rc = self->frozen != NULL ? s_write_batch(self, final) : s_write_tops(self, final);
        pthread_mutex_lock(&self->mu);
        self->job = 0;
        self->job_rc = rc;
        self->job_done = 1;
        do {
            w = write(self->wake[1], "f", 1);
        } while (w < 0 && errno == EINTR);
    }
    pthread_mutex_unlock(&self->mu);
    return NULL;
}

int
agg_counters_start_thread(agg_counters_t *self, esc_kv_t *kv)
{
    esc_kv_t *kv0;
    int k;

    ESC_ASSERT(!self->threaded && self->frozen == NULL);
    if (pipe(self->wake) != 0) {
        esc_log_errno("flush thread pipe");
        return ESC_ERR;
    }
    for (k = 0; k < 2; k++) {
        int fl = fcntl(self->wake[k], F_GETFL);

        /* non-blocking: the loop drains the pipe without ever waiting on it */
        if (fl < 0 || fcntl(self->wake[k], F_SETFL, fl | O_NONBLOCK) != 0
            || fcntl(self->wake[k], F_SETFD, FD_CLOEXEC) != 0) {
            esc_log_errno("flush thread pipe");
            close(self->wake[0]);
            close(self->wake[1]);
            return ESC_ERR;
        }
    }
    pthread_mutex_init(&self->mu, NULL);
    pthread_cond_init(&self->cv, NULL);
    kv0 = self->kv;
    self->kv = kv;
    self->fst = &self->tstats;
    if (pthread_create(&self->thread, NULL, s_thread_main, self) != 0) {
        esc_log_error("flush thread not started");
        pthread_mutex_destroy(&self->mu);
        pthread_cond_destroy(&self->cv);
        close(self->wake[0]);
        close(self->wake[1]);
        self->kv = kv0;
        self->fst = &self->stats;
        return ESC_ERR;
    }
    self->threaded = 1;
    return ESC_OK;
}

enum agg_flush_start
agg_counters_flush_start(agg_counters_t *self, int final)
{
    enum agg_flush_start what = AGG_FLUSH_ALL;

    ESC_ASSERT(self->threaded);
    if (self->busy) {
        return AGG_FLUSH_BUSY;
    }
    if (self->frozen != NULL) {
        what = AGG_FLUSH_OLDER;
    }
    else if (!s_batch_empty(self->open)) {
        s_freeze(self);
    }
    else if (!agg_counters_pending(self)) {
        return AGG_FLUSH_IDLE;
    }
    self->busy = 1;
    pthread_mutex_lock(&self->mu);
    self->job = 1;
    self->job_final = final;
    self->job_done = 0;
    pthread_cond_signal(&self->cv);
    pthread_mutex_unlock(&self->mu);
    return what;
}

int
agg_counters_flushing(const agg_counters_t *self)
{
    return self->busy;
}

int
agg_counters_flush_fd(const agg_counters_t *self)
{
    return self->threaded ? self->wake[0] : -1;
}

int
agg_counters_flush_collect(agg_counters_t *self, esc_rc *rc)
{
    char buf[16];
    int done;

    if (!self->busy) {
        return 0;
    }
    pthread_mutex_lock(&self->mu);
    done = self->job_done;
    *rc = self->job_rc;
    self->job_done = 0;
    pthread_mutex_unlock(&self->mu);
    if (!done) {
        return 0;
    }
    while (read(self->wake[0], buf, sizeof(buf)) > 0) {
        /* one byte per finished flush; drained */
    }
    self->busy = 0;
    s_stats_add(&self->stats, &self->tstats);
    if (*rc == ESC_OK && self->frozen != NULL) {
        s_batch_written(self);
    }
    return 1;
}

/* ---- the rest of the API ---------------------------------------------------------------- */

agg_counters_t *
agg_counters_new(esc_kv_t *kv, const struct agg_counters_opts *opts)
{
    agg_counters_t *self = esc_calloc(1, sizeof(*self));
    struct s_ws *ws = &self->ws;

    ESC_ASSERT(sodium_init() >= 0);
    self->kv = kv;
    self->fst = &self->stats;
    esc_strlcpy(self->prefix, opts->prefix, sizeof(self->prefix));
    memcpy(self->retention_s, opts->retention_s, sizeof(self->retention_s));
    self->dedupe_window_s = opts->dedupe_window_s > 0 ? opts->dedupe_window_s : 86400;
    self->top_flush_ms = opts->top_flush_ms > 0 ? opts->top_flush_ms : 0;
    self->top_step_ms = opts->top_step_ms > 0 ? opts->top_step_ms : 0;
    self->max_posts = opts->max_pending_posts > 0 ? opts->max_pending_posts : 1;
    self->top_n = opts->top_n > 0 ? opts->top_n : 1;
    self->top_posts_n = opts->top_posts_n;
    self->top_flush_max = opts->top_flush_max > 0 ? opts->top_flush_max : 1;
    self->top_max_entries = opts->top_max_entries > 0 ? opts->top_max_entries
                                                      : S_TOP_ENTRIES_DEFAULT;
    self->counters_only = opts->counters_only;
    if (opts->instance != NULL && opts->instance[0] != '\0') {
        esc_strlcpy(self->instance, opts->instance, sizeof(self->instance));
    }
    else {
        unsigned char rnd[8];

        randombytes_buf(rnd, sizeof(rnd));
        sodium_bin2hex(self->instance, sizeof(self->instance), rnd, sizeof(rnd));
    }
    s_recent_init(&self->recent, opts->recent_ids > 0 ? opts->recent_ids : 2);
    s_map_init(&self->bars_m);
    self->open = s_batch_new();
    self->tops = s_tops_new(self);
    self->next_tops_ms = esc_mono_ms() + self->top_flush_ms;
    s_map_init(&ws->cells_m);
    s_map_init(&ws->dyn_m);
    s_map_init(&ws->hours_m);
    s_map_init(&ws->ids_m);
    s_map_init(&ws->cols_m);
    return self;
}

void
agg_counters_destroy(agg_counters_t **self_p)
{
    agg_counters_t *self;
    struct s_ws *ws;
    size_t i;

    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    self = *self_p;
    ws = &self->ws;
    if (self->threaded) {
        /* a flush in progress ends first (its calls are bounded by the Redis timeouts) */
        pthread_mutex_lock(&self->mu);
        self->stop = 1;
        pthread_cond_signal(&self->cv);
        pthread_mutex_unlock(&self->mu);
        pthread_join(self->thread, NULL);
        pthread_mutex_destroy(&self->mu);
        pthread_cond_destroy(&self->cv);
        close(self->wake[0]);
        close(self->wake[1]);
    }
    s_batch_free(&self->open);
    s_batch_free(&self->frozen);
    s_batch_free(&self->spare);
    s_tops_free(&self->tops);
    s_tops_free(&self->tops_frozen);
    s_tops_free(&self->tops_spare);
    s_recent_fini(&self->recent);
    for (i = 0; i < self->n_bars; i++) {
        esc_free(self->bars[i].topic);
        esc_free(self->bars[i].eng);
    }
    esc_free(self->bars);
    s_map_fini(&self->bars_m);
    s_map_fini(&ws->cells_m);
    s_map_fini(&ws->dyn_m);
    s_map_fini(&ws->hours_m);
    s_map_fini(&ws->ids_m);
    s_map_fini(&ws->cols_m);
    esc_free(ws->dcol);
    esc_free(ws->row);
    esc_free(ws->run.upd);
    esc_free(ws->run.auth);
    esc_free(ws->cells);
    esc_free(ws->dyn);
    esc_free(ws->hours);
    esc_free(ws->hour_n);
    esc_free(ws->tmp);
    esc_free(ws->hour_of);
    esc_free(ws->args.buf);
    esc_free(ws->args.off);
    esc_free(ws->args.lens);
    esc_free(ws->args.argv);
    esc_free(self);
    *self_p = NULL;
}

char *
agg_counters_key(const char *prefix, const char *topic, enum agg_res res, int64_t ms, char *out,
                 size_t outsz)
{
    if (res == AGG_RES_TOTAL) {
        snprintf(out, outsz, "%s:t:{%s}", prefix, topic);
        return out;
    }
    snprintf(out, outsz, "%s:c:{%s}:%c:%lld", prefix, topic, s_res_tag[res],
             (long long)s_bucket(ms, res));
    return out;
}

char *
agg_counters_top_key(const char *prefix, const char *topic, enum agg_top kind, int64_t ms,
                     char *out, size_t outsz)
{
    snprintf(out, outsz, "%s:top:{%s}:%s:%lld", prefix, topic, s_top_names[kind],
             (long long)s_bucket(ms, AGG_RES_DAY));
    return out;
}

size_t
agg_counters_open_posts(const agg_counters_t *self)
{
    return self->open->n_recs;
}

size_t
agg_counters_pending_posts(const agg_counters_t *self)
{
    return self->open->n_recs + (self->frozen != NULL ? self->frozen->n_recs : 0);
}

int
agg_counters_pending(const agg_counters_t *self)
{
    if (self->busy) {
        return 1; /* and the top lists are the flush thread's */
    }
    return self->frozen != NULL || !s_batch_empty(self->open) || self->tops_frozen != NULL
           || !s_tops_empty(self->tops);
}

int
agg_counters_full(const agg_counters_t *self)
{
    return agg_counters_pending_posts(self) >= self->max_posts;
}

void
agg_counters_get_stats(const agg_counters_t *self, struct agg_counters_stats *out)
{
    *out = self->stats;
}

const char *
agg_counters_instance(const agg_counters_t *self)
{
    return self->instance;
}
