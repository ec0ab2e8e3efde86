/*
 * Symbol names as people write them: demangled, without the parts the
 * toolchain adds (Rust's hash, compiler clone suffixes).
 */
#include <ctype.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <libiberty/demangle.h>
#include "symbols/symbols.h"

/* Suffixes GCC and LLVM append to a function they clone, split or
 * privatise. The clone is still "that function" to the user. */
static const char *const clone_words[] = {
	"cold", "isra", "constprop", "part", "lto_priv", "llvm", "localalias",
};

static bool is_clone_word(const char *s, size_t n, bool *cold)
{
	for (size_t i = 0; i < sizeof(clone_words) / sizeof(clone_words[0]); i++) {
		if (strlen(clone_words[i]) == n && memcmp(s, clone_words[i], n) == 0) {
			if (i == 0)
				*cold = true;
			return true;
		}
	}
	return false;
}

/* Peels one ".word" or ".word.N" off the end of raw[0, len); returns the
 * new length, or len when the tail is not a clone suffix. */
static size_t peel_one(const char *raw, size_t len, bool *cold)
{
	size_t word_end = len, dot;

	while (word_end > 0 && isdigit((unsigned char)raw[word_end - 1]))
		word_end--;
	/* the numeric part is optional: ".cold", ".localalias" */
	if (word_end != len) {
		if (word_end == 0 || raw[word_end - 1] != '.')
			return len;
		word_end--;
	}
	dot = word_end;
	while (dot > 0 && raw[dot - 1] != '.')
		dot--;
	/* dot - 1 is the separator; keep at least one byte of real name */
	if (dot < 2)
		return len;
	if (!is_clone_word(raw + dot, word_end - dot, cold))
		return len;
	return dot - 1;
}

size_t sp_clone_stripped_len(const char *raw, bool *cold)
{
	size_t len = strlen(raw), prev;
	bool is_cold = false;

	do {
		prev = len;
		len = peel_one(raw, len, &is_cold);
	} while (len != prev);
	if (cold)
		*cold = is_cold;
	return len;
}

/* Legacy Rust names end in "::h" + 16 hex digits; the demangler drops it
 * in non-verbose mode, but a name it did not take for Rust keeps it. */
static void strip_rust_hash(char *s)
{
	size_t n = strlen(s);

	if (n < 19 || memcmp(s + n - 19, "::h", 3) != 0)
		return;
	for (size_t i = n - 16; i < n; i++)
		if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i]))
			return;
	s[n - 19] = '\0';
}

/* Index of the '>' closing the '<' at s[0], or 0. The '>' of "->" (fn
 * types in generic arguments) does not close anything. */
static size_t closing_angle(const char *s, bool *has_as)
{
	int depth = 0;

	*has_as = false;
	for (size_t i = 0; s[i]; i++) {
		if (s[i] == '<')
			depth++;
		else if (s[i] == '>' && (i == 0 || s[i - 1] != '-') && --depth == 0)
			return i;
		else if (depth == 1 && strncmp(s + i, " as ", 4) == 0)
			*has_as = true;
	}
	return 0;
}

/* Rust v0 prints an inherent method as "<crate::Type>::method" where
 * legacy mangling gives "crate::Type::method"; one spelling lets one
 * glob serve both. Trait impls ("<T as Trait>::m") keep their brackets. */
static void unwrap_inherent_impl(char *s)
{
	bool has_as;
	size_t close;

	if (s[0] != '<')
		return;
	close = closing_angle(s, &has_as);
	if (!close || has_as || strncmp(s + close + 1, "::", 2) != 0)
		return;
	memmove(s + close, s + close + 1, strlen(s + close + 1) + 1);
	memmove(s, s + 1, strlen(s + 1) + 1);
}

char *sp_demangle(const char *raw)
{
	char *base = strndup(raw, sp_clone_stripped_len(raw, NULL));
	char *d;

	if (!base)
		return NULL;
	/* only Itanium C++ / Rust (legacy shares _Z) names are worth the
	 * demangler's time: most names in a C object are plain */
	if (strncmp(base, "_Z", 2) != 0 && strncmp(base, "_R", 2) != 0)
		return base;
	d = cplus_demangle(base, DMGL_PARAMS | DMGL_ANSI | DMGL_AUTO);
	if (!d)
		return base;
	if (base[1] == 'R')
		unwrap_inherent_impl(d);
	free(base);
	strip_rust_hash(d);
	return d;
}

bool sp_pattern_matches(const char *glob, const char *raw, const char *demangled)
{
	/* no FNM_PATHNAME: '*' must cross "::" and '/' alike */
	if (demangled && fnmatch(glob, demangled, 0) == 0)
		return true;
	return raw && fnmatch(glob, raw, 0) == 0;
}
