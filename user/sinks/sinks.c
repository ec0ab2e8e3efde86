#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "sinks/sink_micromegas.h"
#include "sinks/sink_otlp.h"
#include "sinks/sink_perfetto.h"
#include "sinks/sinks.h"
#include "output/span_print.h"

int sp_sinks_open_blocks(struct sp_sinks *s, const char *path,
			 char *err, size_t errlen)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);

	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path,
			 errno == ELOOP ? "is a symbolic link, refusing to follow it" : strerror(errno));
		return -1;
	}
	s->blocks = fdopen(fd, "wb");
	if (!s->blocks) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	s->blocks_path = path;
	return 0;
}

int sp_sinks_open_exports(struct sp_sinks *s, const struct sp_export_opts *o,
			  char *err, size_t errlen)
{
	if (o->perfetto_path) {
		s->perfetto = sp_perfetto_open(o->perfetto_path, err, errlen);
		if (!s->perfetto)
			return -1;
		s->perfetto_path = o->perfetto_path;
	}
	if (o->micromegas_url) {
		s->micromegas = sp_mm_open(o->micromegas_url, &s->meta, err, errlen);
		if (!s->micromegas)
			return -1;
		s->has_micromegas = true;
	}
	if (o->otlp_url) {
		s->otlp = sp_otlp_open(o->otlp_url, o->otlp_gzip, &s->meta, err, errlen);
		if (!s->otlp)
			return -1;
		s->has_otlp = true;
	}
	return 0;
}

/* The exports after the block file: nothing they do can cost it. */
static void export(struct sp_sinks *s, const struct sp_span *spans, size_t n)
{
	if (s->perfetto) {
		s->meta.dropped_events = s->dropped ? *s->dropped : 0;
		sp_perfetto_query(s->perfetto, &s->meta, spans, n);
	}
	if (s->micromegas)
		sp_mm_query(s->micromegas, spans, n);
	if (s->otlp)
		sp_otlp_query(s->otlp, spans, n);
}

void sp_sinks_query(void *arg, struct sp_span *spans, size_t n)
{
	struct sp_sinks *s = arg;

	for (size_t i = 0; i < n; i++) {
		spans[i].begin_ns += s->wall_offset;
		spans[i].end_ns += s->wall_offset;
	}
	if (s->print_trees) {
		sp_print_tree(stdout, spans, n, s->tree_flags);
		fflush(stdout);
	}
	if (s->blocks) {
		s->meta.dropped_events = s->dropped ? *s->dropped : 0;
		if (sp_block_write(s->blocks, &s->meta, spans, n))
			s->write_errors++;
		else
			s->blocks_written++;
	}
	export(s, spans, n);
}

/* Live counters while the export is open, the final ones after. */
static void refresh_stats(struct sp_sinks *s)
{
	if (s->micromegas)
		sp_mm_stats(s->micromegas, &s->micromegas_stats);
	if (s->otlp)
		sp_otlp_stats(s->otlp, &s->otlp_stats);
}

void sp_sinks_status(FILE *f, struct sp_sinks *s)
{
	refresh_stats(s);
	if (s->has_micromegas)
		fprintf(f, " | micromegas %" PRIu64 " sent %" PRIu64 " retried %" PRIu64 " dropped",
			s->micromegas_stats.sent, s->micromegas_stats.retried,
			s->micromegas_stats.dropped);
	if (s->has_otlp)
		fprintf(f, " | otlp %" PRIu64 " sent %" PRIu64 " retried %" PRIu64 " dropped",
			s->otlp_stats.sent, s->otlp_stats.retried, s->otlp_stats.dropped);
}

static void remote_summary(FILE *f, const char *name, const struct sp_send_stats *st)
{
	fprintf(f, "; %s: %" PRIu64 " requests sent, %" PRIu64 " retried, %" PRIu64 " dropped",
		name, st->sent, st->retried, st->dropped);
	if (st->dropped)
		fprintf(f, " (%" PRIu64 " queue full, %" PRIu64 " rejected, %" PRIu64
			" given up after retries, %" PRIu64 " unsent at exit, %" PRIu64 " not encoded)",
			st->dropped_full, st->rejected, st->gave_up, st->abandoned,
			st->dropped - st->dropped_full - st->rejected - st->gave_up - st->abandoned);
	if (st->last_error[0]) {
		fputs(", last error ", f);
		sp_print_text(f, st->last_error);
	}
}

void sp_sinks_summary(FILE *f, struct sp_sinks *s)
{
	refresh_stats(s);
	if (s->perfetto_path && !s->perfetto_error)
		fprintf(f, "; %" PRIu64 " queries written to %s", s->perfetto
			? sp_perfetto_queries(s->perfetto) : s->perfetto_queries, s->perfetto_path);
	if (s->perfetto_error)
		fprintf(f, "; %s FAILED to write: %s", s->perfetto_path, strerror(s->perfetto_error));
	if (s->has_micromegas)
		remote_summary(f, "micromegas", &s->micromegas_stats);
	if (s->has_otlp)
		remote_summary(f, "otlp", &s->otlp_stats);
}

static size_t pending(struct sp_sinks *s)
{
	refresh_stats(s);
	return (s->micromegas ? s->micromegas_stats.pending : 0) +
	       (s->otlp ? s->otlp_stats.pending : 0);
}

/* Lets a healthy receiver take the last requests quietly; says what the
 * exit waits for only when that takes longer. */
static void announce_wait(struct sp_sinks *s, unsigned drain_ms)
{
	size_t n = pending(s);

	for (int i = 0; n && i < 20; i++) {
		usleep(10000);
		n = pending(s);
	}
	if (n)
		fprintf(stderr, "spanprobe: sending %zu queued requests (waiting %.1f s at most)\n",
			n, drain_ms / 1000.0);
}

int sp_sinks_finish_exports(struct sp_sinks *s, unsigned drain_ms)
{
	if (drain_ms)
		announce_wait(s, drain_ms);
	/* one deadline for both, so the exit waits drain_ms, not twice that */
	if (s->micromegas)
		sp_mm_drain(s->micromegas, drain_ms);
	if (s->otlp)
		sp_otlp_drain(s->otlp, drain_ms);
	if (s->micromegas) {
		sp_mm_close(s->micromegas, drain_ms, &s->micromegas_stats);
		s->micromegas = NULL;
	}
	if (s->otlp) {
		sp_otlp_close(s->otlp, drain_ms, &s->otlp_stats);
		s->otlp = NULL;
	}
	if (s->perfetto) {
		s->perfetto_queries = sp_perfetto_queries(s->perfetto);
		if (sp_perfetto_close(s->perfetto))
			s->perfetto_error = errno ? errno : EIO;
		s->perfetto = NULL;
	}
	return s->perfetto_error ? -1 : 0;
}

int sp_sinks_close(struct sp_sinks *s)
{
	int rc = 0;

	sp_sinks_finish_exports(s, 0);
	if (s->blocks && fclose(s->blocks))
		rc = -1;
	s->blocks = NULL;
	return rc;
}
