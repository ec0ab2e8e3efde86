/*
 * The human-readable dump of an analysis (sp_async_info_print): what was
 * found and how, for debugging an attach and in the tests' failure output.
 */
#include <inttypes.h>
#include <stdio.h>
#include "dwarf/async_dwarf.h"

/* ------------------------------------------------------------------ */
/* Printing.                                                           */

static const char *kind_name(enum sp_async_node_kind k)
{
	switch (k) {
	case SP_ANODE_COROUTINE:
		return "future";
	case SP_ANODE_MAYBE_DONE:
		return "enum";
	case SP_ANODE_DYN_BOX:
		return "dyn-ptr";
	case SP_ANODE_JOIN_HANDLE:
		return "join-handle";
	case SP_ANODE_BOX:
		return "box";
	}
	return "?";
}

static void print_fields(FILE *f, const char *what, const struct sp_async_field *a, size_t n)
{
	if (!n)
		return;
	fprintf(f, " %s:", what);
	for (size_t i = 0; i < n; i++)
		fprintf(f, " %s@%#x/%u%s", a[i].name, a[i].off, a[i].size,
			a[i].show == SP_AFIELD_INT ? ":int" : a[i].show == SP_AFIELD_STR ? ":str" :
			a[i].show == SP_AFIELD_LEN ? ":len" : "");
}

static void print_guard(FILE *f, const struct sp_async_node *n)
{
	fprintf(f, "%s", n->guard_negate ? "not in {" : "in {");
	for (size_t i = 0; i < n->n_guard; i++) {
		const struct sp_async_range *r = &n->guard[i];

		if (r->lo == r->hi)
			fprintf(f, "%s%" PRIu64, i ? "," : "", r->lo);
		else
			fprintf(f, "%s%" PRIu64 "..%" PRIu64, i ? "," : "", r->lo,
				r->hi);
	}
	fprintf(f, "}");
}

static void print_node(FILE *f, const struct sp_async_poll *p, size_t i, int depth)
{
	const struct sp_async_node *n = &p->nodes[i];

	fprintf(f, "    %*s[%zu] %s %s guard=", 2 * depth, "", i, kind_name(n->kind),
		n->name ? n->name : "?");
	print_guard(f, n);
	fprintf(f, " at %s: obj %#x+%u, %s %#x/%u", n->path, n->base, n->obj_size,
		n->kind == SP_ANODE_COROUTINE   ? "state" :
		n->kind == SP_ANODE_MAYBE_DONE ? "tag" : "ptr",
		n->off, n->size);
	print_fields(f, "args", n->args, n->n_args);
	print_fields(f, "held", n->held, n->n_held);
	if (n->space >= 0)
		fprintf(f, " behind [%d] (%u hop%s)", n->space, n->hops, n->hops == 1 ? "" : "s");
	fputc('\n', f);
}

/* Depth first, children under their parent (the array is breadth first). */
static void print_children(FILE *f, const struct sp_async_poll *p, int parent,
			   int depth)
{
	for (size_t i = 0; i < p->n_nodes && depth < 64; i++) {
		if (p->nodes[i].parent != parent)
			continue;
		print_node(f, p, i, depth);
		print_children(f, p, (int)i, depth + 1);
	}
}

static void print_poll(FILE *f, const struct sp_async_poll *p)
{
	fprintf(f, "poll %s%s\n", p->name, p->is_block ? " (async block)" : "");
	fprintf(f, "  pc %#" PRIx64 " file %#" PRIx64 " size %" PRIu64
		   ", self in %s, __state at %#x/%u, future %u bytes, from %s\n",
		p->low_pc, p->file_offset, p->size,
		p->self_reg == SP_AREG_RSI ? "rsi" : "rdi", p->state_off,
		p->state_size, p->future_size, p->from_dwarf ? "DWARF" : "code");
	if (p->task_cell_off != UINT32_MAX)
		fprintf(f, "  spawned: self = JoinHandle.raw + %#x\n", p->task_cell_off);
	for (unsigned k = 0; k < p->result_err.n; k++) {
		const struct sp_result_test *t = &p->result_err.t[k];

		fprintf(f, "  %s: %s%s at %#x/%u %sin", k ? "Err" : "Ready",
			p->result_err.via_ptr ? "*rax" : "rax:rdx", "", t->off, t->size,
			t->negate ? "not " : "");
		for (unsigned j = 0; j < t->n; j++)
			fprintf(f, " [%#" PRIx64 ", %#" PRIx64 "]", t->lo[j], t->hi[j]);
		fputc('\n', f);
	}
	if (p->symbol)
		fprintf(f, "  symbol %s\n", p->symbol);
	if (p->n_args) {
		fprintf(f, " ");
		print_fields(f, "args", p->args, p->n_args);
		fputc('\n', f);
	}
	if (p->n_nodes)
		fprintf(f, "  nested (%zu%s):\n", p->n_nodes,
			p->truncated ? ", truncated" : "");
	print_children(f, p, -1, 0);
}

void sp_async_info_print(FILE *f, const struct sp_async_info *info)
{
	fprintf(f, "%zu async polls; DWARF %s, types %s; %zu candidates rejected\n",
		info->n, info->has_dwarf ? "yes" : "no",
		info->has_types ? "yes" : "no (no nested futures)",
		info->n_rejected);
	for (size_t i = 0; i < info->n; i++)
		print_poll(f, &info->polls[i]);
	for (size_t i = 0; i < info->n_plain; i++) {
		fprintf(f, "hand-written future's poll, a carrier only:\n");
		print_poll(f, &info->plain[i]);
	}
	for (size_t i = 0; i < info->n_rejected; i++)
		fprintf(f, "not a coroutine: %s at %#" PRIx64 ": %s\n",
			info->rejected[i].name, info->rejected[i].low_pc,
			info->rejected[i].why);
	for (size_t i = 0; i < info->n_known; i++)
		fprintf(f, "known: %s, %" PRIu32 " await point%s\n", info->known[i].name,
			info->known[i].n_suspend, info->known[i].n_suspend == 1 ? "" : "s");
}
