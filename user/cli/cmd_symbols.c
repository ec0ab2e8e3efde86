/*
 * `spanprobe symbols`: shows what a symbol list resolves to, without
 * attaching anything, so a list can be checked before tracing with it.
 * It also prices each function's probes: a probe on an instruction the
 * kernel single-steps costs ~30x one it emulates, and a nearby function
 * with a cheaper first instruction often carries the same information.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <elfutils/libdwfl.h>
#include <linux/types.h>
#include "spanprobe.h"
#include "resolve/async_nested.h"
#include "resolve/async_visibility.h"
#include "cli/cli.h"
#include "symbols/entry_place.h"
#include "symbols/probe_cost.h"
#include "symbols/symbols.h"
#include "resolve/resolve.h"

#define EXIT_USAGE 2

struct opts {
	const char *symbols;
	const char *binary;
	pid_t pid;
	bool json;
	bool strict;
	bool usdt;
	enum sp_exit_policy policy;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: spanprobe symbols -s SYMBOLS (-p PID | BINARY) [--json] [--strict]\n"
		"                         [--exit-probe auto|guard|uretprobe|retsites] [--debuginfo PATH]\n"
		"       spanprobe symbols --usdt (-p PID | BINARY) [--json]\n"
		"  -s, --symbols FILE   symbol list: 'root PATTERN' / 'span PATTERN' lines\n"
		"  -p, --pid PID        resolve in the objects PID has mapped\n"
		"      --json           one JSON document on stdout\n"
		"      --usdt           list the USDT probes the objects offer\n"
		"      --strict         exit 1 when a pattern matches nothing\n"
		"      --exit-probe M   how call ends are observed (default auto:\n"
		"                       ret sites where exceptions/panics can unwind)\n"
		"      --debuginfo PATH a separate debug file, or a directory of them\n"
		"                       (build-id tree or .gnu_debuglink names), searched\n"
		"                       before /usr/lib/debug and debuginfod; repeatable\n"
		"  -h, --help           this text\n");
}

static int parse_pid(const char *s, pid_t *pid)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v <= 0 || v > 0x7fffffffL)
		return -1;
	*pid = (pid_t)v;
	return 0;
}

static int parse_policy(const char *s, enum sp_exit_policy *p)
{
	if (strcmp(s, "auto") == 0)
		*p = SP_EXIT_AUTO;
	else if (strcmp(s, "uretprobe") == 0)
		*p = SP_EXIT_FORCE_URETPROBE;
	else if (strcmp(s, "retsites") == 0)
		*p = SP_EXIT_FORCE_RETSITES;
	else if (strcmp(s, "guard") == 0)
		*p = SP_EXIT_FORCE_GUARD;
	else
		return -1;
	return 0;
}

/* One option; 0 to go on, else the exit status (-1 for "help shown"). */
static int take_opt(int c, const char *arg, const char *word, struct opts *o)
{
	switch (c) {
	case 's':
		o->symbols = arg;
		return 0;
	case 'p':
		if (parse_pid(arg, &o->pid) == 0)
			return 0;
		fprintf(stderr, "spanprobe: invalid pid '%s'\n", arg);
		return EXIT_USAGE;
	case 'j':
		o->json = true;
		return 0;
	case 'S':
		o->strict = true;
		return 0;
	case 'U':
		o->usdt = true;
		return 0;
	case 'e':
		if (parse_policy(arg, &o->policy) == 0)
			return 0;
		fprintf(stderr,
			"spanprobe: --exit-probe: '%s' is not auto, guard, uretprobe or retsites\n",
			arg);
		return EXIT_USAGE;
	case 'd':
		return sp_cli_debuginfo_add(arg) ? EXIT_USAGE : 0;
	case 'h':
		usage(stdout);
		return -1;
	case ':':
		fprintf(stderr, "spanprobe: symbols: option '%s' needs a value\n", word);
		break;
	default:
		fprintf(stderr, "spanprobe: symbols: unknown option '%s'\n", word);
		break;
	}
	usage(stderr);
	return EXIT_USAGE;
}

static int check_args(int argc, char **argv, struct opts *o)
{
	if (optind < argc)
		o->binary = argv[optind++];
	if (optind < argc) {
		fprintf(stderr, "spanprobe: symbols: unexpected argument '%s'\n",
			argv[optind]);
	} else if (!o->symbols && !o->usdt) {
		fprintf(stderr, "spanprobe: symbols: -s SYMBOLS is required\n");
	} else if (!o->pid == !o->binary) {
		fprintf(stderr, "spanprobe: symbols: give either -p PID or BINARY\n");
	} else {
		return sp_cli_debuginfo_apply() ? EXIT_USAGE : 0;
	}
	usage(stderr);
	return EXIT_USAGE;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "symbols", required_argument, NULL, 's' },
		{ "pid", required_argument, NULL, 'p' },
		{ "json", no_argument, NULL, 'j' },
		{ "strict", no_argument, NULL, 'S' },
		{ "usdt", no_argument, NULL, 'U' },
		{ "exit-probe", required_argument, NULL, 'e' },
		{ "debuginfo", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	memset(o, 0, sizeof(*o));
	optind = 0; /* glibc: full re-initialisation, main may have parsed */
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":s:p:h", lo, NULL)) != -1) {
		int rc = take_opt(c, optarg, argv[optind - 1], o);

		if (rc)
			return rc;
	}
	return check_args(argc, argv, o);
}

static const char *role_name(enum sp_role r)
{
	return r == SP_ROLE_ROOT ? "root" : "span";
}

/* A function is listed under every pattern that names it, and always
 * under the one resolution recorded (which may have matched an alias). */
static bool listed_under(const struct sp_func *f, int i, const struct sp_pattern *p)
{
	return f->pattern == i || (f->pattern >= 0 && sp_pattern_matches(p->glob, f->raw, f->demangled));
}

/* What tracing one function costs, from its probed instructions. */
struct func_cost {
	struct sp_probe_insn entry;
	size_t sites_stepped;             /* ret / tail-jump sites single-stepped */
	struct sp_probe_insn site;        /* one of them, for the message */
	bool endbr;                       /* the entry is endbr64... */
	struct sp_probe_insn after_endbr; /* ...followed by this */
	struct sp_entry_place held;       /* where the entry would go with
					   * ret-site exits, kept at the start
					   * by a uretprobe exit */
	unsigned exit_ns;                 /* the dearest way out */
	unsigned call_ns;                 /* entry + exit: one traced call */
	bool expensive;                   /* a single-stepped probe on every call */
};

#define CODE_PEEK 16

/* file offset -> virtual address: constant within the segment */
static uint64_t site_addr(const struct sp_func *f, uint64_t off)
{
	return f->addr + (off - f->offset);
}

/* Decodes the instruction at file offset off; the bytes read go to
 * code (CODE_PEEK), their count is returned (0 if unreadable). */
static size_t decode_at(const struct sp_func *f, uint64_t off, struct sp_probe_insn *out,
			uint8_t *code)
{
	long n = sp_probe_read_code(f->open_path, off, code, CODE_PEEK);

	if (n <= 0 || sp_probe_insn_decode(code, (size_t)n, site_addr(f, off), out)) {
		memset(out, 0, sizeof(*out));
		out->exec = SP_EXEC_UNDECODABLE;
		snprintf(out->text, sizeof(out->text), "(unreadable)");
		return 0;
	}
	return (size_t)n;
}

/* With ret sites every return passes one of them, so the dearest site
 * is what a call may pay; a uretprobe return costs the same anywhere. */
static void exit_cost(const struct sp_func *f, struct func_cost *c)
{
	c->exit_ns = sp_exit_hijacks(f->exit_mode) ? sp_probe_uretprobe_ns() : 0;
	for (size_t i = 0; f->exit_mode == SP_EXIT_RETSITES && i < f->n_exit; i++) {
		struct sp_probe_insn site;
		uint8_t code[CODE_PEEK];
		unsigned ns;

		decode_at(f, f->exit_offsets[i], &site, code);
		ns = sp_probe_hit_ns(site.exec);
		if (site.exec >= SP_EXEC_SINGLESTEP && c->sites_stepped++ == 0)
			c->site = site;
		if (ns > c->exit_ns)
			c->exit_ns = ns;
	}
}

/* A single-stepped entry that a uretprobe exit keeps in place: the kernel
 * hijacks the word at the stack pointer of the hit, and the instructions
 * before the first emulated one move it. */
static void held_entry(const struct sp_func *f, struct func_cost *c)
{
	uint8_t code[96];
	long n;

	if (f->problem || !sp_exit_hijacks(f->exit_mode) || f->entry_shift ||
	    c->entry.exec < SP_EXEC_SINGLESTEP)
		return;
	n = sp_probe_read_code(f->open_path, f->offset, code, sizeof(code));
	if (n > 0)
		sp_entry_place_find(code, (size_t)n, f->addr,
				    f->is_async ? SP_ENTRY_KEEP_ARGS : 0, &c->held);
	if (!c->held.sp_delta)
		c->held.shift = 0; /* it did not move for another reason */
}

static void func_cost(const struct sp_func *f, struct func_cost *c)
{
	uint8_t code[CODE_PEEK];
	size_t n;

	memset(c, 0, sizeof(*c));
	n = decode_at(f, f->offset + f->entry_shift, &c->entry, code);
	/* -fcf-protection builds start every function with endbr64, which
	 * is single-stepped: where the probe could not be moved past it,
	 * say what a probe just after it would cost */
	c->endbr = sp_probe_is_endbr64(code, n) &&
		   sp_probe_insn_decode(code + 4, n - 4, site_addr(f, f->offset + 4),
					&c->after_endbr) == 0;
	held_entry(f, c);
	exit_cost(f, c);
	c->call_ns = sp_probe_hit_ns(c->entry.exec) + c->exit_ns;
	c->expensive = c->entry.exec >= SP_EXEC_SINGLESTEP || c->sites_stepped;
}

/* A traced call at its cheapest: emulated entry, trampoline return. */
static unsigned cheap_call_ns(void)
{
	return sp_probe_hit_ns(SP_EXEC_EMULATED) + sp_probe_uretprobe_ns();
}

static void text_cost(const struct sp_func *f, const struct func_cost *c)
{
	if (f->problem)
		return;
	if (f->entry_shift && f->entry_sp_delta)
		printf("      entry probe at +%u (`%s`), past instructions the kernel would "
		       "single-step (~%.1f us per hit); the stack pointer is %u bytes below "
		       "the return address there\n", f->entry_shift, c->entry.text,
		       sp_probe_hit_ns(SP_EXEC_SINGLESTEP) / 1000.0, f->entry_sp_delta);
	else if (f->entry_shift)
		printf("      entry probe at +%u (`%s`), past instructions the kernel would "
		       "single-step (~%.1f us per hit)\n", f->entry_shift, c->entry.text,
		       sp_probe_hit_ns(SP_EXEC_SINGLESTEP) / 1000.0);
	printf("      probe cost: ~%.1f us per call", c->call_ns / 1000.0);
	if (!c->expensive) {
		printf(" (first instruction `%s`: %s)\n", c->entry.text,
		       sp_probe_exec_name(c->entry.exec));
		return;
	}
	printf(" instead of ~%.1f us\n", cheap_call_ns() / 1000.0);
	if (c->entry.exec >= SP_EXEC_SINGLESTEP)
		printf("      warning: first instruction `%s` is %s by the kernel (~%.1f us "
		       "per hit; push, nop, jmp or call are emulated, ~%.1f us): a function "
		       "nearby that starts with one of those is cheaper to trace\n",
		       c->entry.text, sp_probe_exec_name(c->entry.exec),
		       sp_probe_hit_ns(c->entry.exec) / 1000.0,
		       sp_probe_hit_ns(SP_EXEC_EMULATED) / 1000.0);
	if (c->held.shift)
		printf("      note: the first emulated instruction is at +%u, but the stack "
		       "pointer moves %u bytes before it and a uretprobe exit needs it on the "
		       "return address: the entry probe stays at the start\n", c->held.shift,
		       c->held.sp_delta);
	if (c->endbr)
		printf("      note: the instruction after endbr64 (+4, `%s`) is %s and sees "
		       "the same calls with the same stack\n", c->after_endbr.text,
		       sp_probe_exec_name(c->after_endbr.exec));
	if (c->sites_stepped)
		printf("      warning: %zu of %zu exit sites (`%s`) single-stepped by the kernel "
		       "(~%.1f us per return): the price of ret-site exits, which let "
		       "exceptions and panics unwind safely\n",
		       c->sites_stepped, f->n_exit, c->site.text,
		       sp_probe_hit_ns(SP_EXEC_SINGLESTEP) / 1000.0);
}

static void func_costs(const struct sp_func_set *fs, struct func_cost *costs)
{
	for (size_t k = 0; k < fs->n; k++)
		func_cost(&fs->v[k], &costs[k]);
}

static void text_caps(const struct sp_func *f)
{
	static const char *types[] = { "i64", "u64", "str", "i32", "u32" };

	if (!f->n_caps && !f->err_cond)
		return;
	printf("      captures:");
	for (unsigned i = 0; i < f->n_caps; i++) {
		const struct sp_cap_decl *c = &f->caps[i];

		if (c->src == SP_CAP_RET)
			printf(" %s=ret:%s", c->name, types[c->type % 5]);
		else
			printf(" %s=arg%u:%s", c->name, c->index, types[c->type % 5]);
	}
	if (f->err_cond == SP_ERR_NEG)
		printf(" error=neg");
	else if (f->err_cond == SP_ERR_NULL)
		printf(" error=null");
	else if (f->err_cond == SP_ERR_EQ)
		printf(" error=%lld", (long long)f->err_value);
	putchar('\n');
}

/* A USDT source: where its probes are, instead of a function's extent. */
static void text_usdt(const struct sp_func *f, const struct func_cost *c)
{
	printf("  %s\n", f->demangled);
	if (f->source == SP_SRC_USDT_PAIR)
		printf("      usdt %s:%s .. %s:%s in %s (first site at 0x%llx)\n", f->usdt_provider,
		       f->usdt_start, f->usdt_provider, f->usdt_done ? f->usdt_done : "?",
		       f->object, (unsigned long long)f->addr);
	else
		printf("      usdt %s %s:%s in %s (first site at 0x%llx)\n",
		       f->source == SP_SRC_USDT_EVENT ? "event" : "error probe",
		       f->usdt_provider, f->usdt_start, f->object, (unsigned long long)f->addr);
	if (f->problem)
		printf("      problem: %s\n", f->problem);
	text_caps(f);
	text_cost(f, c);
}

static void text_func(const struct sp_func *f, const struct func_cost *c)
{
	if (f->source != SP_SRC_FUNC) {
		text_usdt(f, c);
		return;
	}
	printf("  %s\n", f->demangled);
	if (strcmp(f->raw, f->demangled) != 0)
		printf("      mangled %s\n", f->raw);
	printf("      %s at 0x%llx (offset 0x%llx, size %llu), ", f->object,
	       (unsigned long long)f->addr, (unsigned long long)f->offset,
	       (unsigned long long)f->size);
	if (f->exit_mode == SP_EXIT_URETPROBE)
		printf("exit: uretprobe\n");
	else if (f->exit_mode == SP_EXIT_GUARD)
		printf("exit: uretprobe, unwind guard\n");
	else if (f->problem)
		printf("exit: ret sites\n"); /* not counted: never attached */
	else
		printf("exit: %zu ret site%s\n", f->n_exit, f->n_exit == 1 ? "" : "s");
	if (f->problem)
		printf("      problem: %s\n", f->problem);
	else if (f->exit_why)
		printf("      exit %s: %s\n", f->exit_mode == SP_EXIT_URETPROBE ? "uretprobe" :
		       f->exit_mode == SP_EXIT_GUARD ? "guarded uretprobe" : "at ret sites",
		       f->exit_why);
	text_caps(f);
	text_cost(f, c);
}

/* What the pattern will show of async code, one line per thing named. */
static void text_async(const struct sp_avis_pattern *ap)
{
	char line[2048];

	for (size_t k = 0; k < ap->n; k++) {
		const struct sp_avis_item *it = &ap->items[k];

		sp_avis_item_text(it, line, sizeof(line));
		printf("  async %s: %s\n", it->name ? it->name : it->object, line);
	}
}

/* Polls probed for the async fns inlined into them (nested decoding),
 * though no pattern names them: they cost probes too. */
static void text_carriers(const struct sp_func_set *fs, const struct func_cost *costs)
{
	bool head = false;

	for (size_t k = 0; k < fs->n; k++) {
		if (!fs->v[k].nested || fs->v[k].pattern >= 0)
			continue;
		if (!head)
			printf("carriers (probed for the async fns inlined into them):\n");
		head = true;
		text_func(&fs->v[k], &costs[k]);
		if (fs->v[k].nested->truncated)
			printf("      warning: more than %d values to read: some inlined futures "
			       "or argument fingerprints are left out\n", SP_NESTED_MAX);
	}
}

/* ------------------------------------------------------------------ */
/* Where each object's symbols and types came from (issue 12).         */

static const char *syms_id(enum sp_syms_src s)
{
	return s == SP_SYMS_SYMTAB ? "symtab" : s == SP_SYMS_DEBUG_SYMTAB ? "debug_symtab" :
	       "dynsym";
}

static const char *syms_text(enum sp_syms_src s)
{
	return s == SP_SYMS_SYMTAB ? ".symtab of the object" :
	       s == SP_SYMS_DEBUG_SYMTAB ? ".symtab of its debug file (the object is "
					   "stripped to .dynsym)" :
	       ".dynsym only (exported functions)";
}

static const char *types_id(enum sp_types_src t)
{
	return t == SP_TYPES_FULL ? "full" : t == SP_TYPES_LINES ? "lines" :
	       t == SP_TYPES_NONE ? "none" : "not_read";
}

/* Where the DWARF that was read lives. */
static const char *types_from(const struct sp_object_src *o)
{
	if (o->types != SP_TYPES_FULL && o->types != SP_TYPES_LINES)
		return NULL;
	if (o->split_units)
		return o->debug_file ? "split_dwarf_of_debug_file" : "split_dwarf";
	return o->debug_file ? "debug_file" : "object";
}

static void types_text(const struct sp_object_src *o, char *buf, size_t len)
{
	const char *from = types_from(o);
	const char *where = !from ? "" :
			    !strcmp(from, "object") ? "in the object" :
			    !strcmp(from, "debug_file") ? "in its debug file" :
			    "in split DWARF (.dwo / .dwp)";

	if (o->types != SP_TYPES_FULL && o->split_missing) {
		snprintf(buf, len, "in split DWARF that could not be read (below): the "
			 "skeleton units in the object hold line tables only");
		return;
	}
	switch (o->types) {
	case SP_TYPES_FULL:
		snprintf(buf, len, "DWARF types %s", where);
		break;
	case SP_TYPES_LINES:
		snprintf(buf, len, "line tables only, %s: not enough for nested "
			 "decoding; %s", where, SP_AVIS_TYPES_ADVICE);
		break;
	case SP_TYPES_NONE:
		snprintf(buf, len, "no DWARF for its Rust code%s; %s", o->debug_file ? "" :
			 " (none in the object, no separate debug file found: --debuginfo, "
			 "/usr/lib/debug/.build-id, .gnu_debuglink, debuginfod)",
			 SP_AVIS_TYPES_ADVICE);
		break;
	default:
		snprintf(buf, len, "not read (no Rust async code)");
		break;
	}
}

/* split-debuginfo whose units libdw could not read: say which and why. */
static void split_note(const struct sp_object_src *o, char *buf, size_t len)
{
	buf[0] = '\0';
	if (o->split_missing)
		snprintf(buf, len, "%zu split DWARF unit%s not found or not readable: a .dwo "
			 "is looked for where the build wrote it, a .dwp beside the "
			 "object under its name + .dwp (libdw reads .dwp from elfutils "
			 "0.191 on; this one is %s)", o->split_missing,
			 o->split_missing == 1 ? "" : "s", dwfl_version(NULL));
}

static void text_objects(const struct sp_func_set *fs)
{
	char line[2048];

	if (fs->n_objects)
		printf("objects:\n");
	for (size_t i = 0; i < fs->n_objects; i++) {
		const struct sp_object_src *o = &fs->objects[i];

		printf("  %s%s%s%s\n", o->path, *o->build_id ? " (build-id " : "",
		       o->build_id, *o->build_id ? ")" : "");
		printf("      symbols: %s\n", syms_text(o->syms));
		if (o->debug_file)
			printf("      debug file: %s (found through %s)\n", o->debug_file,
			       o->debug_source);
		else if (o->debug_why)
			printf("      debug file: none taken: %s\n", o->debug_why);
		types_text(o, line, sizeof(line));
		printf("      types: %s\n", line);
		split_note(o, line, sizeof(line));
		if (*line)
			printf("      split DWARF: %s\n", line);
	}
}

static void json_str(const char *s);

static void json_object(const struct sp_object_src *o)
{
	char line[2048];

	fputs("{\"path\":", stdout);
	json_str(o->path);
	fputs(",\"build_id\":", stdout);
	json_str(o->build_id);
	printf(",\"symbols\":\"%s\",\"debug_file\":", syms_id(o->syms));
	json_str(o->debug_file);
	fputs(",\"debug_source\":", stdout);
	json_str(o->debug_source);
	fputs(",\"debug_note\":", stdout);
	json_str(o->debug_why);
	printf(",\"types\":\"%s\",\"types_from\":", types_id(o->types));
	json_str(types_from(o));
	printf(",\"split_units\":%zu,\"split_missing\":%zu,\"types_text\":",
	       o->split_units, o->split_missing);
	types_text(o, line, sizeof(line));
	json_str(line);
	fputs(",\"split_note\":", stdout);
	split_note(o, line, sizeof(line));
	json_str(*line ? line : NULL);
	putchar('}');
}

static const struct sp_avis_pattern *avis_of(const struct sp_avis_report *rep, size_t i)
{
	static const struct sp_avis_pattern none;

	return rep && i < rep->n ? &rep->v[i] : &none;
}

static void print_text(const struct sp_pattern_list *pats, const struct sp_func_set *fs,
		       const struct func_cost *costs, const struct sp_avis_report *rep)
{
	size_t attachable = 0, expensive = 0;

	for (size_t i = 0; i < pats->n; i++) {
		const struct sp_pattern *p = &pats->v[i];
		const struct sp_avis_pattern *ap = avis_of(rep, i);

		if (!p->matches && !ap->n)
			continue;
		printf("%s:%d: %s %s\n", p->file, p->line, role_name(p->role), p->glob);
		for (size_t k = 0; k < fs->n; k++)
			if (listed_under(&fs->v[k], (int)i, p))
				text_func(&fs->v[k], &costs[k]);
		text_async(ap);
	}
	text_carriers(fs, costs);
	text_objects(fs);
	for (size_t k = 0; k < fs->n; k++) {
		attachable += fs->v[k].problem == NULL;
		expensive += fs->v[k].problem == NULL && costs[k].expensive;
	}
	printf("%zu function%s, %zu attachable", fs->n, fs->n == 1 ? "" : "s",
	       attachable);
	if (expensive)
		printf(", %zu with a single-stepped probe (~%.0fx the cost of a cheap one)",
		       expensive, (double)sp_probe_hit_ns(SP_EXEC_SINGLESTEP) /
				  sp_probe_hit_ns(SP_EXEC_EMULATED));
	putchar('\n');
	/* not worth a warning, but a list that names nothing there should
	 * be able to tell why */
	for (size_t k = 0; k < fs->n_no_funcs; k++)
		printf("%s: no function symbols (data only): not searched\n", fs->no_funcs[k]);
}

/* JSON strings: escapes, and U+FFFD for bytes that are not UTF-8 (paths
 * and symbol names are bytes; the document must still parse). */
static size_t utf8_len(const unsigned char *s)
{
	size_t n = s[0] >= 0xf0 && s[0] < 0xf5 ? 4 : s[0] >= 0xe0 ? 3 :
		   s[0] >= 0xc2 && s[0] < 0xe0 ? 2 : 0;

	for (size_t i = 1; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

static void json_str(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	if (!s) {
		fputs("null", stdout);
		return;
	}
	putchar('"');
	while (*p) {
		size_t n;

		if (*p == '"' || *p == '\\')
			printf("\\%c", *p++);
		else if (*p < 0x20)
			printf("\\u%04x", *p++);
		else if (*p < 0x80)
			putchar(*p++);
		else if ((n = utf8_len(p)) != 0)
			p += fwrite(p, 1, n, stdout);
		else {
			fputs("\\ufffd", stdout);
			p++;
		}
	}
	putchar('"');
}

static void json_pattern_head(const struct sp_pattern *p)
{
	fputs("{\"file\":", stdout);
	json_str(p->file);
	printf(",\"line\":%d,\"role\":\"%s\",\"pattern\":", p->line,
	       role_name(p->role));
	json_str(p->glob);
}

static void json_cost(const struct sp_func *f, const struct func_cost *c)
{
	printf(",\"entry_shift\":%u,\"entry_sp_delta\":%u,\"probe_offset\":%llu",
	       f->entry_shift, f->entry_sp_delta,
	       (unsigned long long)(f->offset + f->entry_shift));
	fputs(",\"entry_insn\":", stdout);
	json_str(c->entry.text);
	printf(",\"entry_probe\":\"%s\",\"exit_sites_single_stepped\":%zu,"
	       "\"cost_ns_per_call\":%u,\"expensive\":%s,\"after_endbr64\":",
	       sp_probe_exec_name(c->entry.exec), c->sites_stepped, c->call_ns,
	       c->expensive ? "true" : "false");
	if (!c->endbr) {
		fputs("null", stdout);
		return;
	}
	fputs("{\"insn\":", stdout);
	json_str(c->after_endbr.text);
	printf(",\"probe\":\"%s\"}", sp_probe_exec_name(c->after_endbr.exec));
}

static void json_func(const struct sp_func *f, const struct func_cost *c)
{
	fputs("{\"name\":", stdout);
	json_str(f->demangled);
	fputs(",\"mangled\":", stdout);
	json_str(f->raw);
	fputs(",\"object\":", stdout);
	json_str(f->object);
	printf(",\"address\":%llu,\"offset\":%llu,\"size\":%llu,\"exit_probe\":\"%s\",\"exit_sites\":[",
	       (unsigned long long)f->addr, (unsigned long long)f->offset,
	       (unsigned long long)f->size,
	       f->exit_mode == SP_EXIT_URETPROBE ? "uretprobe" :
	       f->exit_mode == SP_EXIT_GUARD ? "guard" : "retsites");
	for (size_t i = 0; i < f->n_exit; i++)
		printf("%s%llu", i ? "," : "", (unsigned long long)f->exit_offsets[i]);
	fputs("],\"exit_reason\":", stdout);
	json_str(f->exit_why);
	printf(",\"attachable\":%s,\"problem\":", f->problem ? "false" : "true");
	json_str(f->problem);
	json_cost(f, c);
	if (f->source != SP_SRC_FUNC) {
		fputs(",\"usdt\":{\"provider\":", stdout);
		json_str(f->usdt_provider);
		fputs(f->source == SP_SRC_USDT_PAIR ? ",\"start\":" :
		      f->source == SP_SRC_USDT_EVENT ? ",\"event\":" : ",\"error\":", stdout);
		json_str(f->usdt_start);
		if (f->source == SP_SRC_USDT_PAIR) {
			fputs(",\"done\":", stdout);
			json_str(f->usdt_done);
		}
		putchar('}');
	}
	if (f->n_caps) {
		fputs(",\"captures\":[", stdout);
		for (unsigned i = 0; i < f->n_caps; i++) {
			fputs(i ? ",{\"name\":" : "{\"name\":", stdout);
			json_str(f->caps[i].name);
			if (f->caps[i].src == SP_CAP_RET)
				fputs(",\"source\":\"ret\"", stdout);
			else
				printf(",\"source\":\"arg%u\"", f->caps[i].index);
			printf(",\"type\":\"%s\"}",
			       (const char *[]){ "i64", "u64", "str", "i32", "u32" }[f->caps[i].type % 5]);
		}
		putchar(']');
	}
	putchar('}');
}

static void json_async_item(const struct sp_avis_item *it)
{
	char line[2048];

	printf("{\"class\":\"%s\",\"object\":", sp_avis_class_id(it->cls));
	json_str(it->object);
	fputs(",\"name\":", stdout);
	json_str(it->name);
	fputs(",\"root\":", stdout);
	json_str(it->root);
	fputs(",\"member_path\":", stdout);
	json_str(it->path);
	if (it->cls == SP_AVIS_OUT_OF_LINE || it->cls == SP_AVIS_INLINED)
		printf(",\"self_register\":\"%s\",\"state_offset\":%u,\"state_size\":%u",
		       it->self_reg == SP_AREG_RSI ? "rsi" : "rdi", it->state_off,
		       it->state_size);
	if (it->cls == SP_AVIS_INLINED || it->cls == SP_AVIS_INVISIBLE)
		printf(",\"await_points\":%u", it->n_suspend);
	sp_avis_item_text(it, line, sizeof(line));
	fputs(",\"text\":", stdout);
	json_str(line);
	putchar('}');
}

/* "async": null for a pattern that names no async code. */
static void json_async(const struct sp_avis_pattern *ap)
{
	fputs(",\"async\":", stdout);
	if (ap->cls == SP_AVIS_NONE) {
		fputs("null", stdout);
		return;
	}
	printf("{\"class\":\"%s\",\"items\":[", sp_avis_class_id(ap->cls));
	for (size_t k = 0; k < ap->n; k++) {
		fputs(k ? "," : "", stdout);
		json_async_item(&ap->items[k]);
	}
	fputs("]}", stdout);
}

static void print_json(const struct sp_pattern_list *pats, const struct sp_func_set *fs,
		       const struct func_cost *costs, const struct sp_avis_report *rep)
{
	bool first = true;

	fputs("{\"patterns\":[", stdout);
	for (size_t i = 0; i < pats->n; i++) {
		bool any = false;

		fputs(i ? "," : "", stdout);
		json_pattern_head(&pats->v[i]);
		fputs(",\"matches\":[", stdout);
		for (size_t k = 0; k < fs->n; k++) {
			if (!listed_under(&fs->v[k], (int)i, &pats->v[i]))
				continue;
			fputs(any ? "," : "", stdout);
			json_func(&fs->v[k], &costs[k]);
			any = true;
		}
		putchar(']');
		json_async(avis_of(rep, i));
		putchar('}');
	}
	fputs("],\"carriers\":[", stdout);
	for (size_t k = 0, any = 0; k < fs->n; k++) {
		if (!fs->v[k].nested || fs->v[k].pattern >= 0)
			continue;
		fputs(any++ ? "," : "", stdout);
		json_func(&fs->v[k], &costs[k]);
	}
	fputs("],\"objects\":[", stdout);
	for (size_t i = 0; i < fs->n_objects; i++) {
		fputs(i ? "," : "", stdout);
		json_object(&fs->objects[i]);
	}
	fputs("],\"unmatched\":[", stdout);
	for (size_t i = 0; i < pats->n; i++) {
		if (pats->v[i].matches)
			continue;
		fputs(first ? "" : ",", stdout);
		json_pattern_head(&pats->v[i]);
		json_async(avis_of(rep, i));
		putchar('}');
		first = false;
	}
	fputs("]}\n", stdout);
}

/* Warnings for unmatched patterns; the exit status the result deserves. */
static int verdict(const struct opts *o, const struct sp_pattern_list *pats,
		   const struct sp_func_set *fs, const struct sp_avis_report *rep)
{
	size_t unmatched = 0, attachable = 0;
	char why[2048];

	for (size_t i = 0; i < pats->n; i++) {
		if (pats->v[i].matches)
			continue;
		unmatched++;
		sp_avis_pattern_text(avis_of(rep, i), why, sizeof(why));
		fprintf(stderr, "spanprobe: warning: %s:%d: pattern '%s' matched nothing%s%s\n",
			pats->v[i].file, pats->v[i].line, pats->v[i].glob,
			*why ? ": " : "", why);
	}
	for (size_t k = 0; k < fs->n; k++)
		attachable += fs->v[k].problem == NULL;
	if (attachable == 0) {
		fprintf(stderr, "spanprobe: no attachable function matched\n");
		return 1;
	}
	return o->strict && unmatched ? 1 : 0;
}

int sp_cmd_symbols(int argc, char **argv)
{
	struct sp_pattern_list pats = { 0 };
	struct sp_func_set fs = { 0 };
	struct sp_avis_report rep = { 0 };
	struct func_cost *costs;
	struct opts o;
	char err[1024];
	int rc = parse_args(argc, argv, &o);

	if (rc)
		return rc < 0 ? 0 : rc;
	if (o.usdt)
		return sp_list_usdt(o.pid, o.binary, o.json);
	if (sp_symlist_parse_file(o.symbols, &pats, err, sizeof(err))) {
		fprintf(stderr, "spanprobe: %s\n", err);
		return EXIT_USAGE;
	}
	if (sp_resolve(o.pid, o.binary, &pats, o.policy, &fs, err, sizeof(err))) {
		fprintf(stderr, "spanprobe: %s\n", err);
		sp_symlist_free(&pats);
		return EXIT_USAGE;
	}
	/* without it the report is today's: a warning, not a failure */
	if (sp_avis_for_target(o.pid, o.binary, false, &pats, &fs, &rep, err, sizeof(err)))
		fprintf(stderr, "spanprobe: warning: %s\n", err);
	costs = calloc(fs.n ? fs.n : 1, sizeof(*costs));
	if (!costs) {
		fprintf(stderr, "spanprobe: out of memory\n");
		rc = 1;
	} else {
		func_costs(&fs, costs);
		if (o.json)
			print_json(&pats, &fs, costs, &rep);
		else
			print_text(&pats, &fs, costs, &rep);
		fflush(stdout);
		rc = verdict(&o, &pats, &fs, &rep);
	}
	sp_avis_free(&rep);
	free(costs);
	sp_func_set_free(&fs);
	sp_symlist_free(&pats);
	return rc;
}
