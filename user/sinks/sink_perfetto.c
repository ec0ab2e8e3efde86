#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "sinks/sink_perfetto.h"
#include "sinks/span_attrs.h"
#include "output/span_print.h"

struct sp_perfetto {
	FILE *f;
	bool is_stdout;
	bool have_origin;
	uint64_t origin;    /* Unix ns of ts 0 */
	uint64_t queries;
	uint32_t *pids;     /* processes already named */
	size_t n_pids;
	bool any_event;
	int error;          /* first errno seen while writing */
};

struct sp_perfetto *sp_perfetto_open(const char *path, char *err, size_t errlen)
{
	struct sp_perfetto *p = calloc(1, sizeof(*p));
	int fd;

	if (!p) {
		snprintf(err, errlen, "%s: %s", path, strerror(ENOMEM));
		return NULL;
	}
	if (!strcmp(path, "-")) {
		p->f = stdout;
		p->is_stdout = true;
	} else {
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
		p->f = fd < 0 ? NULL : fdopen(fd, "w");
		if (!p->f) {
			snprintf(err, errlen, "%s: %s", path,
				 errno == ELOOP ? "is a symbolic link, refusing to follow it" : strerror(errno));
			if (fd >= 0)
				close(fd);
			free(p);
			return NULL;
		}
	}
	fputs("[\n", p->f);
	return p;
}

/* Starts an event line: a separator after the previous one. */
static void event(struct sp_perfetto *p)
{
	fputs(p->any_event ? ",\n{" : "{", p->f);
	p->any_event = true;
}

/*
 * Times are written in steps of 1/1024 µs (0.977 ns) since the origin.
 * Viewers add ts + dur in doubles: with decimal nanoseconds (".298") the
 * sum can land a hair past the next slice's ts, and DevTools then drops
 * a slice that starts exactly where its sibling ends (a tail call). A
 * multiple of 1/1024 is an exact double, so the sum is exact; and since
 * a step is under 1 ns, round(ts * 1000) still gives back the very ns.
 */
static int64_t steps(uint64_t ns, uint64_t origin)
{
	uint64_t d = ns >= origin ? ns - origin : origin - ns;
	/* d * 1024 / 1000 rounded, without overflowing d * 1024 */
	uint64_t k = d / 1000 * 1024 + (d % 1000 * 1024 + 500) / 1000;

	return ns >= origin ? (int64_t)k : -(int64_t)k;
}

/* k / 1024 µs in decimal, exactly: 1/1024 = 0.0009765625 */
static void micros(FILE *f, int64_t k)
{
	uint64_t a = k < 0 ? (uint64_t)-k : (uint64_t)k;

	fprintf(f, "%s%" PRIu64 ".%010" PRIu64, k < 0 ? "-" : "", a / 1024, a % 1024 * 9765625);
}

static void name_process(struct sp_perfetto *p, const struct sp_block_header *h)
{
	uint32_t *grown;

	for (size_t i = 0; i < p->n_pids; i++)
		if (p->pids[i] == h->pid)
			return;
	grown = realloc(p->pids, (p->n_pids + 1) * sizeof(*grown));
	if (!grown)
		return; /* only the label is lost */
	p->pids = grown;
	p->pids[p->n_pids++] = h->pid;
	event(p);
	fprintf(p->f, "\"ph\":\"M\",\"name\":\"process_name\",\"pid\":%" PRIu32
		",\"tid\":0,\"args\":{\"name\":", h->pid);
	{
		/* "qserver (pid 123)": the base name reads best on a track */
		const char *exe = h->exe ? h->exe : "?", *base = strrchr(exe, '/');
		char *label = NULL;

		if (asprintf(&label, "%s (pid %" PRIu32 ")", base ? base + 1 : exe, h->pid) < 0)
			label = NULL;
		sp_print_json_string(p->f, label ? label : exe);
		free(label);
	}
	fprintf(p->f, ",\"time_origin_unix_ns\":\"%" PRIu64 "\"}}", p->origin);
}

static void name_track(struct sp_perfetto *p, uint32_t pid, uint64_t track, const struct sp_span *root)
{
	char *label = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&label, &len);

	if (m) {
		fprintf(m, "query %" PRIu64 ": %s (tid %" PRIu32 ", ", track,
			root->name ? root->name : "?", root->tid);
		sp_print_duration(m, sp_span_duration(root));
		fputs(root->flags & SP_SPAN_INCOMPLETE ? ", incomplete)" : ")", m);
		if (fclose(m)) {
			free(label);
			label = NULL;
		}
	}
	event(p);
	fprintf(p->f, "\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":%" PRIu32 ",\"tid\":%" PRIu64
		",\"args\":{\"name\":", pid, track);
	sp_print_json_string(p->f, label ? label : "query");
	fputs("}}", p->f);
	free(label);
	/* tracks in the order the queries came */
	event(p);
	fprintf(p->f, "\"ph\":\"M\",\"name\":\"thread_sort_index\",\"pid\":%" PRIu32 ",\"tid\":%" PRIu64
		",\"args\":{\"sort_index\":%" PRIu64 "}}", pid, track, track);
}

static void span_args(FILE *f, const struct sp_span *s)
{
	struct sp_span_attr a[SP_SPAN_ATTRS_MAX];
	size_t n = sp_span_attrs(s, a);

	/* ids as strings: 64-bit values do not survive a JSON double */
	fprintf(f, "\"args\":{\"span_id\":\"%" PRIu64 "\",\"parent_span_id\":\"%" PRIu64
		"\",\"depth\":%" PRIu32, s->span_id, s->parent_span_id, s->depth);
	for (size_t i = 0; i < n; i++) {
		putc(',', f);
		sp_print_json_string(f, a[i].key);
		putc(':', f);
		if (a[i].type == SP_ATTR_BOOL)
			fputs(a[i].value ? "true" : "false", f);
		else if (a[i].type == SP_ATTR_STRING)
			sp_print_json_string(f, a[i].str);
		else if (a[i].type == SP_ATTR_UINT)
			fprintf(f, "%" PRIu64, (uint64_t)a[i].value);
		else
			fprintf(f, "%" PRId64, a[i].value);
	}
	putc('}', f);
}

static void slice(struct sp_perfetto *p, uint32_t pid, uint64_t track, const struct sp_span *s)
{
	int64_t begin = steps(s->begin_ns, p->origin);
	int64_t end = steps(s->end_ns >= s->begin_ns ? s->end_ns : s->begin_ns, p->origin);

	event(p);
	fputs("\"ph\":\"X\",\"cat\":\"spanprobe\",\"name\":", p->f);
	sp_print_json_string(p->f, s->name);
	fprintf(p->f, ",\"pid\":%" PRIu32 ",\"tid\":%" PRIu64 ",\"ts\":", pid, track);
	micros(p->f, begin);
	fputs(",\"dur\":", p->f);
	micros(p->f, end - begin); /* so that ts + dur is the end exactly */
	putc(',', p->f);
	span_args(p->f, s);
	putc('}', p->f);
}

void sp_perfetto_query(struct sp_perfetto *p, const struct sp_block_header *h,
		       const struct sp_span *spans, size_t n)
{
	const struct sp_span *root = &spans[0];

	if (!n)
		return;
	for (size_t i = 0; i < n; i++)
		if (spans[i].span_id == spans[i].query_id)
			root = &spans[i];
	if (!p->have_origin) {
		p->origin = h->proc_start_ns ? h->proc_start_ns : root->begin_ns;
		p->have_origin = true;
	}
	p->queries++;
	name_process(p, h);
	name_track(p, h->pid, p->queries, root);
	for (size_t i = 0; i < n; i++)
		slice(p, h->pid, p->queries, &spans[i]);
	/* a query is on disk as soon as it is written, as with blocks */
	if ((fflush(p->f) || ferror(p->f)) && !p->error)
		p->error = errno ? errno : EIO;
}

uint64_t sp_perfetto_queries(const struct sp_perfetto *p)
{
	return p->queries;
}

int sp_perfetto_close(struct sp_perfetto *p)
{
	int error;

	if (!p)
		return 0;
	fputs("\n]\n", p->f);
	if ((fflush(p->f) || ferror(p->f)) && !p->error)
		p->error = errno ? errno : EIO;
	if (!p->is_stdout && fclose(p->f) && !p->error)
		p->error = errno ? errno : EIO;
	error = p->error;
	free(p->pids);
	free(p);
	errno = error;
	return error ? -1 : 0;
}
