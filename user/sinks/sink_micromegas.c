#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/clock.h"
#include "sinks/micromegas_block.h"
#include "sinks/micromegas_records.h"
#include "sinks/proc_identity.h"
#include "sinks/sink_micromegas.h"

#define TOKEN_ENV "MICROMEGAS_INGESTION_API_KEY"
/* the reference client's retry counts: metadata 10, event blocks fewer */
#define METADATA_RETRIES 10
#define BLOCK_RETRIES 5
#define TICKS_PER_SECOND 1000000000u /* ticks are Unix ns */

struct stream {
	struct stream *next;
	uint32_t tid;
	char id[SP_MM_UUID_LEN + 1];
	int64_t object_offset;  /* objects in this stream's earlier blocks */
	atomic_bool lost;       /* its record did not get through: resend */
};

/* One micromegas process per traced process (attach --exe traces many),
 * registered before its first block. */
struct proc {
	struct proc *next;
	char process_id[SP_MM_UUID_LEN + 1];
	uint32_t pid;
	char *exe;
	uint64_t start_ns;
	atomic_bool process_lost;
	struct stream *streams;
};

struct sp_mm_sink {
	struct sp_send_queue *q;
	char *url_process, *url_stream, *url_block;
	struct proc *procs;
	uint64_t encode_errors; /* counted as dropped */
};

static void mark_lost(void *flag, bool delivered)
{
	if (!delivered)
		atomic_store((atomic_bool *)flag, true);
}

/* Queues body for url; a record whose sending fails sets *lost. */
static void queue_body(struct sp_mm_sink *s, const char *url, const char *what, char *body,
		 size_t len, unsigned retries, atomic_bool *lost)
{
	struct sp_send_request r = {
		.url = url, .what = what, .content_type = "application/cbor",
		.body = body, .len = len, .max_retries = retries,
		.done = lost ? mark_lost : NULL, .done_arg = lost,
	};

	if (!sp_send_enqueue(s->q, &r) && lost)
		atomic_store(lost, true);
}

/* An open_memstream body, or NULL (counted) if it could not be built. */
static char *finish_body(struct sp_mm_sink *s, FILE *f, char **buf)
{
	if (ferror(f) | fclose(f)) {
		free(*buf);
		s->encode_errors++;
		return NULL;
	}
	return *buf;
}

static void send_process(struct sp_mm_sink *s, struct proc *pr)
{
	struct sp_proc_identity id;
	char pid[16], *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	struct sp_mm_property props[] = { { "pid", pid }, { "collector", "spanprobe" } };
	struct sp_mm_process p = {
		.process_id = pr->process_id, .exe = pr->exe, .tsc_frequency = TICKS_PER_SECOND,
		.start_time_ns = pr->start_ns, .start_ticks = (int64_t)pr->start_ns,
		.properties = props, .n_properties = 2,
	};

	if (!f) {
		s->encode_errors++;
		return;
	}
	snprintf(pid, sizeof(pid), "%" PRIu32, pr->pid);
	sp_proc_identity((pid_t)pr->pid, &id);
	p.username = id.username;
	p.realname = id.realname;
	p.computer = id.computer;
	p.distro = id.distro;
	p.cpu_brand = id.cpu_brand;
	sp_mm_process_body(f, &p);
	if (finish_body(s, f, &buf))
		queue_body(s, s->url_process, "insert_process", buf, len, METADATA_RETRIES,
			   &pr->process_lost);
}

static void thread_name(uint32_t pid, uint32_t tid, char *out, size_t outlen)
{
	char path[64];
	FILE *f;

	out[0] = 0;
	snprintf(path, sizeof(path), "/proc/%" PRIu32 "/task/%" PRIu32 "/comm", pid, tid);
	f = fopen(path, "re");
	if (f) {
		if (fgets(out, (int)outlen, f))
			out[strcspn(out, "\n")] = 0;
		fclose(f);
	}
}

static void send_stream(struct sp_mm_sink *s, struct proc *pr, struct stream *st)
{
	static const char *const tags[] = { "cpu" }; /* async_events reads only these */
	char tid[16], name[64], *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	struct sp_mm_property props[] = { { "thread-id", tid }, { "thread-name", name } };
	struct sp_mm_stream m = {
		.process_id = pr->process_id, .stream_id = st->id, .tags = tags, .n_tags = 1,
		.properties = props, .n_properties = 2,
	};

	if (!f) {
		s->encode_errors++;
		return;
	}
	snprintf(tid, sizeof(tid), "%" PRIu32, st->tid);
	thread_name(pr->pid, st->tid, name, sizeof(name));
	if (!name[0])
		m.n_properties = 1; /* the thread is gone: no name to give */
	sp_mm_stream_body(f, &m);
	if (finish_body(s, f, &buf))
		queue_body(s, s->url_stream, "insert_stream", buf, len, METADATA_RETRIES, &st->lost);
}

/* The stream of a thread, created (and its record queued) on first use;
 * a record that was lost is queued again before the next block. */
static struct stream *stream_of(struct sp_mm_sink *s, struct proc *pr, uint32_t tid)
{
	struct stream *st;

	for (st = pr->streams; st && st->tid != tid; st = st->next)
		;
	if (st) {
		if (atomic_exchange(&st->lost, false))
			send_stream(s, pr, st);
		return st;
	}
	st = calloc(1, sizeof(*st));
	if (!st || sp_mm_uuid_v4(st->id)) {
		free(st);
		return NULL;
	}
	st->tid = tid;
	atomic_init(&st->lost, false);
	st->next = pr->streams;
	pr->streams = st;
	send_stream(s, pr, st);
	return st;
}

static void send_block(struct sp_mm_sink *s, struct proc *pr, struct stream *st,
		       const struct sp_span *spans, size_t n)
{
	struct sp_mm_payload p;
	char block_id[SP_MM_UUID_LEN + 1], *buf = NULL;
	size_t len = 0;
	FILE *f;

	if (sp_mm_encode_spans(spans, n, &p) || sp_mm_uuid_v4(block_id) ||
	    !(f = open_memstream(&buf, &len))) {
		sp_mm_payload_free(&p);
		s->encode_errors++;
		return;
	}
	sp_mm_block_body(f, &(struct sp_mm_block){
		.block_id = block_id, .stream_id = st->id, .process_id = pr->process_id,
		.begin_time_ns = p.begin_ns, .end_time_ns = p.end_ns,
		.begin_ticks = (int64_t)(p.begin_ns - pr->start_ns),
		.end_ticks = (int64_t)(p.end_ns - pr->start_ns),
		.deps_lz4 = p.deps_lz4, .deps_len = p.deps_len,
		.objs_lz4 = p.objs_lz4, .objs_len = p.objs_len,
		.object_offset = st->object_offset, .nb_objects = p.nb_objects,
	});
	sp_mm_payload_free(&p);
	if (!finish_body(s, f, &buf))
		return;
	/* the offset counts what the stream was given, delivered or not */
	st->object_offset += p.nb_objects;
	queue_body(s, s->url_block, "insert_block", buf, len, BLOCK_RETRIES, NULL);
}

static int cmp_tid(const void *a, const void *b)
{
	const struct sp_span *x = a, *y = b;

	return x->tid < y->tid ? -1 : x->tid > y->tid;
}

static void free_proc(struct proc *pr)
{
	while (pr->streams) {
		struct stream *next = pr->streams->next;

		free(pr->streams);
		pr->streams = next;
	}
	free(pr->exe);
	free(pr);
}

/* A process of the same pid but another start is a new life (a restart
 * that got the pid back, or an exec): a process of its own. */
static struct proc *proc_of(struct sp_mm_sink *s, const struct sp_block_header *meta,
			    uint64_t first_ns)
{
	uint64_t start = meta->proc_start_ns;
	struct proc *pr;

	for (pr = s->procs; pr; pr = pr->next)
		if (pr->pid == meta->pid && (!start || pr->start_ns == start))
			return pr;
	pr = calloc(1, sizeof(*pr));
	if (!pr || !(pr->exe = strdup(meta->exe ? meta->exe : "")) || sp_mm_uuid_v4(pr->process_id)) {
		if (pr)
			free_proc(pr);
		return NULL;
	}
	pr->pid = meta->pid;
	/* the process start is tick 0 of its clock; if it is unknown (gone
	 * before it was seen), its first span's begin, else now */
	pr->start_ns = start ? start : first_ns ? first_ns : sp_now_wall();
	atomic_init(&pr->process_lost, false);
	pr->next = s->procs;
	s->procs = pr;
	send_process(s, pr);
	return pr;
}

void sp_mm_query(struct sp_mm_sink *s, const struct sp_block_header *meta,
		 const struct sp_span *spans, size_t n)
{
	struct sp_span *v = n ? malloc(n * sizeof(*v)) : NULL;
	uint64_t first = UINT64_MAX;
	struct proc *pr;

	for (size_t i = 0; i < n; i++)
		first = spans[i].begin_ns < first ? spans[i].begin_ns : first;
	pr = v ? proc_of(s, meta, first == UINT64_MAX ? 0 : first) : NULL;

	if (!pr) {
		free(v);
		s->encode_errors += n != 0;
		return;
	}
	if (atomic_exchange(&pr->process_lost, false))
		send_process(s, pr);
	/* a query runs on one thread; split by thread all the same, since a
	 * stream is a thread's */
	memcpy(v, spans, n * sizeof(*v));
	qsort(v, n, sizeof(*v), cmp_tid);
	for (size_t i = 0, j; i < n; i = j) {
		struct stream *st = stream_of(s, pr, v[i].tid);

		for (j = i + 1; j < n && v[j].tid == v[i].tid; j++)
			;
		if (st)
			send_block(s, pr, st, v + i, j - i);
		else
			s->encode_errors++;
	}
	free(v);
}

static char *route(const char *base, size_t len, const char *path)
{
	char *out;

	return asprintf(&out, "%.*s/ingestion/%s", (int)len, base, path) < 0 ? NULL : out;
}

static int set_routes(struct sp_mm_sink *s, const char *url)
{
	size_t len = strlen(url);

	while (len && url[len - 1] == '/')
		len--;
	s->url_process = route(url, len, "insert_process");
	s->url_stream = route(url, len, "insert_stream");
	s->url_block = route(url, len, "insert_block");
	return s->url_process && s->url_stream && s->url_block ? 0 : -1;
}

static struct sp_send_queue *make_queue(char *err, size_t errlen)
{
	const char *token = getenv(TOKEN_ENV);
	char *auth = NULL;
	struct sp_send_conf conf = {
		.max_items = 512, .max_bytes = 64u << 20, .timeout_ms = 10000,
		.backoff_ms = 10, .max_backoff_ms = 1000,
	};
	struct sp_send_queue *q;

	if (token && *token) {
		/* the token itself is never printed, even here */
		if (strpbrk(token, "\r\n")) {
			snprintf(err, errlen, "%s contains a line break", TOKEN_ENV);
			return NULL;
		}
		if (asprintf(&auth, "Authorization: Bearer %s", token) < 0) {
			snprintf(err, errlen, "--micromegas: out of memory");
			return NULL;
		}
		conf.headers = (const char *const *)&auth;
		conf.n_headers = 1;
	}
	q = sp_send_queue_new(&conf, err, errlen);
	if (auth) {
		explicit_bzero(auth, strlen(auth));
		free(auth);
	}
	return q;
}

static void free_sink(struct sp_mm_sink *s)
{
	while (s->procs) {
		struct proc *next = s->procs->next;

		free_proc(s->procs);
		s->procs = next;
	}
	free(s->url_process);
	free(s->url_stream);
	free(s->url_block);
	free(s);
}

struct sp_mm_sink *sp_mm_open(const char *url, const struct sp_block_header *meta,
			      char *err, size_t errlen)
{
	struct sp_mm_sink *s;

	if (!sp_send_url_ok(url)) {
		snprintf(err, errlen, "--micromegas: '%s' is not an http:// or https:// URL", url);
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s || set_routes(s, url)) {
		snprintf(err, errlen, "--micromegas: out of memory");
		if (s)
			free_sink(s);
		return NULL;
	}
	s->q = make_queue(err, errlen);
	if (!s->q) {
		free_sink(s);
		return NULL;
	}
	/* one target is registered at once; with many (pid 0), each
	 * before its first query */
	if (meta->pid && !proc_of(s, meta, 0)) {
		snprintf(err, errlen, "--micromegas: out of memory or randomness");
		sp_send_queue_close(s->q, 0, NULL);
		free_sink(s);
		return NULL;
	}
	return s;
}

void sp_mm_stats(struct sp_mm_sink *s, struct sp_send_stats *st)
{
	sp_send_queue_stats(s->q, st);
	st->dropped += s->encode_errors;
}

void sp_mm_drain(struct sp_mm_sink *s, unsigned drain_ms)
{
	sp_send_queue_drain(s->q, drain_ms);
}

void sp_mm_close(struct sp_mm_sink *s, unsigned drain_ms, struct sp_send_stats *final)
{
	if (!s)
		return;
	/* the sender thread may still touch the streams' flags: join first */
	sp_send_queue_close(s->q, drain_ms, final);
	if (final)
		final->dropped += s->encode_errors;
	free_sink(s);
}
