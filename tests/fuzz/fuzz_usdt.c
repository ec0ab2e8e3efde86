/*
 * libFuzzer harness: the .note.stapsdt parser (sp_usdt_parse_notes) and
 * the argument-spec parser behind it. The first 8 bytes are the address
 * of .stapsdt.base, the rest the section. A rejected section must say
 * which note; an accepted one must hold well-formed probes: non-empty
 * provider and name, and argument specs that are either understood (a
 * count within the limit, every size 1, 2, 4 or 8, a register name
 * present where one is needed) or marked not understood (-1).
 */
#include "fuzz_common.h"
#include "symbols/usdt_notes.h"

static void check_probe(const struct sp_usdt_probe *p)
{
	if (!p->provider[0] || !p->name[0] || p->n_args < -1 || p->n_args > SP_USDT_MAX_ARGS) {
		fprintf(stderr, "usdt: malformed probe '%s:%s' (%d args)\n", p->provider, p->name,
			p->n_args);
		abort();
	}
	for (int i = 0; i < p->n_args; i++) {
		const struct sp_usdt_arg *a = &p->args[i];
		int s = a->size < 0 ? -a->size : a->size;

		if ((s != 1 && s != 2 && s != 4 && s != 8) ||
		    (a->kind != SP_USDT_ARG_CONST && !a->reg[0])) {
			fprintf(stderr, "usdt: arg %d of '%s' accepted malformed: size %d kind %d\n",
				i, p->args_text, a->size, a->kind);
			abort();
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sp_usdt_list l = { 0 };
	uint64_t base = 0;
	char err[512] = "";

	if (size < sizeof(base))
		return 0;
	memcpy(&base, data, sizeof(base));
	data += sizeof(base);
	size -= sizeof(base);
	if (sp_usdt_parse_notes(data, size, base, &l, err, sizeof(err))) {
		fuzz_check_err("usdt", err, sizeof(err), "note at byte");
	} else {
		for (size_t i = 0; i < l.n; i++)
			check_probe(&l.v[i]);
	}
	sp_usdt_list_free(&l);
	return 0;
}
