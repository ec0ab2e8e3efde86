/*
 * The statistics part of a session's end. Kept separate from the event
 * loop: it only needs the function set, the BPF maps (still readable
 * after detach) and the per-function kept counts.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "symbols/probe_cost.h"
#include "stats/prune_advice.h"
#include "stats/stats_session.h"

unsigned sp_probe_single_steps(const struct sp_func *f)
{
	uint8_t code[16];
	long n = f->open_path ? sp_probe_read_code(f->open_path, f->offset, code, sizeof(code)) : -1;
	unsigned steps = f->exit_mode == SP_EXIT_RETSITES;

	if (n > 0) {
		enum sp_probe_exec e = sp_probe_exec_of(code, (size_t)n);

		steps += e == SP_EXEC_SINGLESTEP || e == SP_EXEC_UNDECODABLE;
	}
	return steps;
}

/* Per function, what the caller said, else what the code says. */
static unsigned steps_of(const struct sp_stats_session *s, size_t i)
{
	if (s->single_steps)
		return s->single_steps[i];
	return s->funcs->v[i].problem ? 0 : sp_probe_single_steps(&s->funcs->v[i]);
}

void sp_stats_build_reports(const struct sp_stats_session *s,
			    const struct sp_sym_stats *raw, struct sp_sym_report *out)
{
	for (size_t i = 0; i < s->funcs->n; i++) {
		const struct sp_func *f = &s->funcs->v[i];
		struct sp_sym_report *r = &out[i];

		memset(r, 0, sizeof(*r));
		r->name = f->demangled;
		r->raw = f->raw;
		r->object = f->object;
		r->role = f->role;
		r->s = raw[i];
		r->kept_in_slow = s->kept_in_slow ? s->kept_in_slow[i] : 0;
		r->min_span_ns = s->min_span_ns;
		r->est_cost_ns = sp_est_probe_cost(&r->s, s->costs, steps_of(s, i));
	}
}

/* The attachable functions' reports, in function order. */
static size_t probed_only(const struct sp_stats_session *s, const struct sp_sym_report *all,
			  struct sp_sym_report *out)
{
	size_t n = 0;

	for (size_t i = 0; i < s->funcs->n; i++)
		if (!s->funcs->v[i].problem)
			out[n++] = all[i];
	return n;
}

static int write_block(const struct sp_stats_session *s, const struct sp_sym_report *r,
		       size_t n)
{
	struct sp_block_header h = *s->meta;

	h.range_begin_ns = s->begin_ns;
	h.range_end_ns = s->end_ns;
	if (sp_block_write_stats(s->blocks, &h, r, n) == 0)
		return 0;
	fprintf(stderr, "spanprobe: writing the statistics block: %s\n", strerror(errno));
	return -1;
}

static int print_stats(const struct sp_stats_session *s, const struct sp_sym_report *r,
		       size_t n)
{
	int rc = s->json ? sp_sym_stats_print_json(s->stats_out, r, n)
			 : sp_sym_stats_print_table(s->stats_out, r, n);

	if (rc)
		fprintf(stderr, "spanprobe: printing statistics failed\n");
	return rc;
}

static int advise(const struct sp_stats_session *s, const struct sp_sym_report *all)
{
	struct sp_prune_in in = {
		.source = s->symbols_path, .pats = s->pats, .funcs = s->funcs,
		.reports = all,
	};
	char err[512];
	char *text = sp_prune_read_list(s->symbols_path, &in.len, err, sizeof(err));
	int rc = -1;

	if (text) {
		in.text = text;
		rc = sp_prune_advice(s->advice_out, &in, err, sizeof(err));
	}
	if (rc)
		fprintf(stderr, "spanprobe: no pruning advice: %s\n", err);
	free(text);
	return rc;
}

int sp_stats_session_report_raw(const struct sp_stats_session *s,
				const struct sp_sym_stats *raw)
{
	size_t nf = s->funcs->n, n;
	struct sp_sym_report *all = calloc(nf ? nf : 1, sizeof(*all));
	struct sp_sym_report *probed = calloc(nf ? nf : 1, sizeof(*probed));
	int rc = 0;

	if (!all || !probed) {
		fprintf(stderr, "spanprobe: statistics: out of memory\n");
		free(all);
		free(probed);
		return -1;
	}
	sp_stats_build_reports(s, raw, all);
	n = probed_only(s, all, probed);
	if (s->blocks && s->meta && write_block(s, probed, n))
		rc = -1;
	/* what is only printed is said on stderr but loses no data */
	if (s->print_stats && s->stats_out)
		print_stats(s, probed, n);
	if (s->prune_advice && s->advice_out)
		advise(s, all);
	free(probed);
	free(all);
	return rc;
}

int sp_stats_session_report(const struct sp_stats_session *s)
{
	size_t nf = s->funcs->n;
	struct sp_sym_stats *raw = calloc(nf ? nf : 1, sizeof(*raw));
	int rc, err = 0;

	if (!raw) {
		fprintf(stderr, "spanprobe: statistics: out of memory\n");
		return -1;
	}
	for (size_t i = 0; i < nf; i++) {
		/* functions that were never attached have no counters */
		if (s->funcs->v[i].problem)
			continue;
		rc = sp_attach_sym_stats(s->att, (uint32_t)i, &raw[i]);
		if (rc && !err)
			err = -rc;
	}
	if (err)
		fprintf(stderr, "spanprobe: reading per-symbol statistics: %s\n", strerror(err));
	rc = sp_stats_session_report_raw(s, raw);
	free(raw);
	return err ? -1 : rc;
}
