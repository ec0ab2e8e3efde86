#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/types.h>
#include "spanprobe.h"
#include "dwarf/async_disasm.h"
#include "dwarf/async_dwarf.h"
#include "resolve/async_resolve.h"

/* Poll functions of async code demangle as closures; anything else needs
 * no DWARF walk, which is costly on a large Rust server. */
static bool any_closure(const struct sp_func *funcs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (sp_async_is_closure_name(funcs[i].demangled))
			return true;
	return false;
}

static const struct sp_async_poll *poll_at(const struct sp_async_info *info, uint64_t off)
{
	for (size_t i = 0; i < info->n; i++)
		if (info->polls[i].file_offset == off)
			return &info->polls[i];
	return NULL;
}

static bool has_cap_named(const struct sp_func *f, const char *name)
{
	for (unsigned i = 0; i < f->n_caps; i++)
		if (!strcmp(f->caps[i].name, name))
			return true;
	return false;
}

/* Capture k reads the future's argument a at its first poll. */
static void field_cap(struct sp_func *f, unsigned k, const struct sp_async_field *a)
{
	struct sp_field_decl *d = &f->fields[k];

	f->caps[k].src = SP_CAP_FIELD;
	d->off = a->off;
	d->ptr_off = a->ptr_off;
	d->len_off = a->len_off;
	d->size = a->int_size;
	d->is_signed = a->is_signed;
	d->kind = a->show == SP_AFIELD_STR ? SP_FK_STR : a->show == SP_AFIELD_LEN ? SP_FK_LEN :
									  SP_FK_INT;
	if (a->show == SP_AFIELD_STR)
		f->caps[k].type = SP_CAP_STR_T;
	else if (a->show == SP_AFIELD_LEN)
		f->caps[k].type = SP_CAP_U64;
	else if (f->caps[k].type == SP_CAP_STR_T)
		f->caps[k].type = a->is_signed ? SP_CAP_I64 : SP_CAP_U64;
}

/* An async fn's arguments are fields of its future, not registers of its
 * poll: argN is the Nth field of the Unresumed variant, `args` takes
 * every one DWARF lets us show. An argN without a readable field stays
 * unread (shown as such). */
static void future_args(struct sp_func *f, const struct sp_async_poll *p)
{
	for (unsigned k = 0; k < f->n_caps; k++)
		if (f->caps[k].src == SP_CAP_ARG && f->caps[k].index < p->n_args &&
		    p->args[f->caps[k].index].show != SP_AFIELD_NONE)
			field_cap(f, k, &p->args[f->caps[k].index]);
	for (size_t i = 0; f->want_args && i < p->n_args && f->n_caps < 4; i++) {
		unsigned k = f->n_caps;

		if (p->args[i].show == SP_AFIELD_NONE || !p->args[i].name ||
		    has_cap_named(f, p->args[i].name))
			continue;
		free(f->owned_names[k]);
		if (!(f->owned_names[k] = strdup(p->args[i].name)))
			return;
		f->caps[k] = (struct sp_cap_decl){ .name = f->owned_names[k],
						   .type = SP_CAP_U64 };
		field_cap(f, k, &p->args[i]);
		f->n_caps++;
	}
}

void sp_async_mark_poll(struct sp_func *f, const struct sp_async_poll *p)
{
	char *name = p->name ? strdup(p->name) : NULL;

	f->is_async = true;
	f->self_in_rsi = p->self_reg == SP_AREG_RSI;
	f->result_err = p->result_err;
	future_args(f, p);
	f->state_off = p->state_off;
	f->state_size = p->state_size;
	f->spawned = p->task_cell_off != UINT32_MAX;
	f->task_cell_off = p->task_cell_off;
	if (name) {
		free(f->demangled);
		f->demangled = name;
	}
}

bool sp_async_name_matches(const char *glob, const char *name)
{
	static const char *const poll_suffix[] = { "", "::{{closure}}", "::{closure#0}" };
	char buf[4096];

	if (!glob || !name)
		return false;
	for (size_t i = 0; i < sizeof(poll_suffix) / sizeof(poll_suffix[0]); i++) {
		int n = snprintf(buf, sizeof(buf), "%s%s", name, poll_suffix[i]);

		if (n > 0 && (size_t)n < sizeof(buf) && sp_pattern_matches(glob, NULL, buf))
			return true;
	}
	return false;
}

void sp_async_annotate(struct sp_func *funcs, size_t n, const char *open_path)
{
	struct sp_async_info info;
	char err[256];

	if (!n || !any_closure(funcs, n))
		return;
	if (sp_async_analyze(open_path, &info, err, sizeof(err))) {
		fprintf(stderr, "spanprobe: warning: %s: async analysis: %s\n", open_path, err);
		return;
	}
	sp_async_annotate_info(funcs, n, &info);
	sp_async_info_free(&info);
}

void sp_async_annotate_info(struct sp_func *funcs, size_t n, const struct sp_async_info *info)
{
	for (size_t i = 0; i < n; i++) {
		const struct sp_async_poll *p = poll_at(info, funcs[i].offset);

		if (p && p->state_size >= 1 && p->state_size <= 8)
			sp_async_mark_poll(&funcs[i], p);
	}
}
