/*
 * spanprobe dump FILE [--json] [--perfetto OUT]: prints a block file back,
 * or converts it to a Perfetto/Chrome trace-event JSON file.
 *
 * Damaged blocks are reported on stderr and skipped so that everything
 * still readable gets printed; the exit status says whether anything was
 * lost (1) or the command could not run at all (2).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include "output/block_format.h"
#include "cli/cli.h"
#include "sinks/sink_perfetto.h"
#include "output/span_print.h"

struct dump_opts {
	const char *path;
	bool json;
	bool expand;          /* --expand: no collapsed siblings */
	const char *perfetto; /* OUT of --perfetto, or NULL */
};

static void usage(FILE *f)
{
	fputs("usage: spanprobe dump FILE [--json] [--perfetto OUT] [--expand]\n"
	      "  Prints the queries stored in a block file as trees.\n"
	      "  --json          one JSON object per span and line instead\n"
	      "  --perfetto OUT  write them to OUT (\"-\": stdout) as a Perfetto/Chrome\n"
	      "                  trace JSON file, one track per query, instead of trees\n"
	      "  --expand        every span on a line of its own (by default a run of\n"
	      "                  same-name siblings is one line: count, total, p50, max)\n"
	      "  -h, --help      this text\n", f);
}

/* 0: run, 1: help was printed, -1: usage error (already reported). */
static int parse_args(int argc, char **argv, struct dump_opts *o)
{
	bool opts_done = false;

	memset(o, 0, sizeof(*o));
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!opts_done && strcmp(a, "--") == 0) {
			opts_done = true;
		} else if (!opts_done && strcmp(a, "--json") == 0) {
			o->json = true;
		} else if (!opts_done && strcmp(a, "--expand") == 0) {
			o->expand = true;
		} else if (!opts_done && strcmp(a, "--perfetto") == 0) {
			if (i + 1 >= argc) {
				fputs("spanprobe dump: --perfetto needs an output file\n", stderr);
				return -1;
			}
			o->perfetto = argv[++i];
		} else if (!opts_done && (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)) {
			usage(stdout);
			return 1;
		} else if (!opts_done && a[0] == '-' && a[1]) {
			fprintf(stderr, "spanprobe dump: unknown option %s\n", a);
			return -1;
		} else if (o->path) {
			fprintf(stderr, "spanprobe dump: more than one FILE (%s, %s)\n", o->path, a);
			return -1;
		} else {
			o->path = a;
		}
	}
	if (!o->path) {
		fputs("spanprobe dump: missing FILE\n", stderr);
		return -1;
	}
	return 0;
}

static void print_block_header(const struct sp_block *b)
{
	const struct sp_block_header *h = &b->hdr;

	printf("block: pid %" PRIu32 " exe ", h->pid);
	sp_print_text(stdout, h->exe);
	fputs(" started ", stdout);
	sp_print_time(stdout, h->proc_start_ns);
	if (b->n) {
		fputs("  spans from ", stdout);
		sp_print_time(stdout, h->range_begin_ns);
		fputs(" to ", stdout);
		sp_print_time(stdout, h->range_end_ns);
	}
	printf("  %zu spans  %" PRIu64 " dropped events", b->n, h->dropped_events);
	/* a session's last block: its figures are what `stats` reads */
	if (b->n_stats)
		printf("  %zu symbol statistics (see spanprobe stats)", b->n_stats);
	putchar('\n');
}

static void print_query_tree(const struct sp_span *q, size_t n, void *arg)
{
	const unsigned *flags = arg;

	sp_print_tree(stdout, q, n, *flags);
	putchar('\n');
}

static void print_query_json(const struct sp_span *q, size_t n, void *arg)
{
	(void)arg;
	sp_print_json(stdout, q, n);
}

struct perfetto_ctx {
	struct sp_perfetto *p;
	const struct sp_block_header *hdr;
};

static void perfetto_query(const struct sp_span *q, size_t n, void *arg)
{
	struct perfetto_ctx *c = arg;

	sp_perfetto_query(c->p, c->hdr, q, n);
}

static void print_block(struct sp_block *b, bool json, unsigned tree_flags)
{
	if (!json)
		print_block_header(b);
	sp_for_each_query(b->spans, b->n, json ? print_query_json : print_query_tree,
			  &tree_flags);
}

int sp_cmd_dump(int argc, char **argv)
{
	struct dump_opts o;
	struct sp_block_reader *r;
	struct sp_perfetto *pf = NULL;
	struct sp_block b;
	char err[512];
	int rc, status = 0;

	rc = parse_args(argc, argv, &o);
	if (rc) {
		if (rc < 0)
			usage(stderr);
		return rc < 0 ? 2 : 0;
	}
	r = sp_block_reader_open(o.path, err, sizeof(err));
	if (!r) {
		fprintf(stderr, "spanprobe dump: %s\n", err);
		return 2;
	}
	if (o.perfetto && !(pf = sp_perfetto_open(o.perfetto, err, sizeof(err)))) {
		fprintf(stderr, "spanprobe dump: %s\n", err);
		sp_block_reader_close(r);
		return 2;
	}
	while ((rc = sp_block_reader_next(r, &b, err, sizeof(err))) != 0) {
		if (rc < 0) {
			/* keep stdout and stderr in order when both are a terminal */
			fflush(stdout);
			fprintf(stderr, "spanprobe dump: %s\n", err);
			status = 1;
			continue;
		}
		if (pf)
			sp_for_each_query(b.spans, b.n, perfetto_query,
					  &(struct perfetto_ctx){ pf, &b.hdr });
		if (!pf || o.json)
			print_block(&b, o.json, o.expand ? SP_TREE_EXPAND : 0);
	}
	sp_block_reader_close(r);
	if (pf && sp_perfetto_close(pf)) {
		fprintf(stderr, "spanprobe dump: %s: %s\n", o.perfetto, strerror(errno));
		return 1;
	}
	if (fflush(stdout) || ferror(stdout)) {
		fprintf(stderr, "spanprobe dump: writing output: %s\n", strerror(errno));
		return 1;
	}
	return status;
}
