/*
 * The separate debug file of an object (see debuginfo.h). Every
 * candidate is opened and checked before it is taken: same GNU build-id
 * as the object (the id the linker hashes from the code, so a stale
 * .debug file from another build is refused), and for .gnu_debuglink
 * the CRC the link records. A candidate that holds neither .debug_info
 * nor .symtab (the stripped binary itself, found by its build-id) is no
 * debug file.
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <elfutils/libdwelf.h>
#include "base/errmsg.h"
#include "symbols/debuginfo.h"
#include "symbols/debuginfod_fetch.h"

#define DEBUG_ROOT "/usr/lib/debug"

/* --debuginfo, as given. */
struct given {
	const char *path;
	bool is_dir;
	bool used;          /* a FILE some object took */
	char id[SP_BUILD_ID_HEX]; /* a FILE's build-id, for the error */
};

struct cached {
	char *open_path;
	struct sp_debuginfo r;
};

static struct given *given;
static size_t n_given;
static struct cached *cache;
static size_t n_cache;
static char first_obj[512], first_id[SP_BUILD_ID_HEX];

/* What the object says of itself: the ids a candidate must carry. */
struct want {
	const char *path;      /* as the process sees it */
	const char *open_path;
	const char *root;      /* "/proc/PID/root" or "" */
	size_t root_len;
	unsigned char id[64];
	size_t id_len;
	const char *link;      /* .gnu_debuglink name, or NULL */
	GElf_Word crc;
	struct stat self;      /* never take the object itself */
};

static void hex(const unsigned char *b, size_t n, char *out, size_t len)
{
	size_t k = 0;

	for (size_t i = 0; i < n && k + 2 < len; i++, k += 2)
		snprintf(out + k, len - k, "%02x", b[i]);
	out[k] = '\0';
}

size_t sp_build_id_hex(Elf *elf, char *buf, size_t len)
{
	const void *id = NULL;
	ssize_t n = elf ? dwelf_elf_gnu_build_id(elf, &id) : -1;

	buf[0] = '\0';
	if (n <= 0 || (size_t)n > 64)
		return 0;
	hex(id, (size_t)n, buf, len);
	return (size_t)n;
}

const char *sp_debuginfo_source_name(enum sp_dbg_source s)
{
	switch (s) {
	case SP_DBG_OPTION:
		return "--debuginfo";
	case SP_DBG_BUILD_ID:
		return "build-id directory";
	case SP_DBG_DEBUGLINK:
		return ".gnu_debuglink";
	case SP_DBG_DEBUGINFOD:
		return "debuginfod";
	default:
		return NULL;
	}
}

/* ------------------------------------------------------------------ */
/* Checking one candidate.                                             */

static bool has_section(Elf *e, const char *want)
{
	Elf_Scn *scn = NULL;
	size_t shstrndx;

	if (elf_getshdrstrndx(e, &shstrndx))
		return false;
	while ((scn = elf_nextscn(e, scn))) {
		GElf_Shdr sh;
		const char *name;

		if (gelf_getshdr(scn, &sh) && sh.sh_type != SHT_NOBITS && sh.sh_size &&
		    (name = elf_strptr(e, shstrndx, sh.sh_name)) && strcmp(name, want) == 0)
			return true;
	}
	return false;
}

static bool has_debug_sections(Elf *e)
{
	Elf_Scn *scn = NULL;
	size_t shstrndx;

	if (elf_getshdrstrndx(e, &shstrndx))
		return false;
	while ((scn = elf_nextscn(e, scn))) {
		GElf_Shdr sh;
		const char *name;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type == SHT_NOBITS)
			continue;
		if (sh.sh_type == SHT_SYMTAB && sh.sh_size > sh.sh_entsize)
			return true;
		name = elf_strptr(e, shstrndx, sh.sh_name);
		if (name && strcmp(name, ".debug_info") == 0 && sh.sh_size)
			return true;
	}
	return false;
}

static bool crc_matches(Elf *e, GElf_Word want)
{
	size_t size;
	const char *img = elf_rawfile(e, &size);
	uLong crc = crc32(0L, Z_NULL, 0);

	while (img && size) {
		uInt chunk = size > (1u << 30) ? 1u << 30 : (uInt)size;

		crc = crc32(crc, (const Bytef *)img, chunk);
		img += chunk;
		size -= chunk;
	}
	return img && (GElf_Word)crc == want;
}

/* The id check; 0 when it holds, else why into why. */
static int check_id(Elf *e, const struct want *w, const char *cand, char *why,
		    size_t whylen)
{
	char have[SP_BUILD_ID_HEX], mine[SP_BUILD_ID_HEX];

	sp_build_id_hex(e, have, sizeof(have));
	hex(w->id, w->id_len, mine, sizeof(mine));
	if (strcmp(have, mine) == 0)
		return 0;
	if (!*have)
		sp_set_err(why, whylen, "%s has no build-id, %s has %s: not its debug file",
			   cand, w->path, mine);
	else
		sp_set_err(why, whylen, "%s has build-id %s, %s has %s: not its debug file",
			   cand, have, w->path, mine);
	return -1;
}

/* 0: cand is the object's debug file. 1: nothing there. -1: there, but
 * refused (why says so). with_crc: a .gnu_debuglink candidate. */
static int check(const char *cand, const struct want *w, bool with_crc,
		 char *why, size_t whylen)
{
	struct stat st;
	int fd, rc = -1;
	Elf *e;

	if (stat(cand, &st) || !S_ISREG(st.st_mode))
		return 1;
	if (st.st_dev == w->self.st_dev && st.st_ino == w->self.st_ino)
		return 1;
	if ((fd = open(cand, O_RDONLY | O_CLOEXEC)) < 0) {
		sp_set_err(why, whylen, "%s: %s", cand, strerror(errno));
		return -1;
	}
	e = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (!e || elf_kind(e) != ELF_K_ELF)
		sp_set_err(why, whylen, "%s: not an ELF file", cand);
	else if (!w->id_len && !w->link)
		sp_set_err(why, whylen, "%s: %s has neither a build-id nor a .gnu_debuglink: "
			   "nothing tells that it is its debug file", cand, w->path);
	else if ((w->id_len || !with_crc) && check_id(e, w, cand, why, whylen))
		; /* why is set */
	else if (with_crc && !crc_matches(e, w->crc))
		sp_set_err(why, whylen, "%s: its CRC is not the one %s's .gnu_debuglink "
			   "records (%08x): not its debug file", cand, w->path, w->crc);
	else if (!has_debug_sections(e))
		sp_set_err(why, whylen, "%s has neither .debug_info nor .symtab", cand);
	else
		rc = 0;
	if (e)
		elf_end(e);
	close(fd);
	return rc;
}

/* ------------------------------------------------------------------ */
/* The places, in order.                                               */

struct search {
	const struct want *w;
	struct sp_debuginfo *r;
	/* a --debuginfo FILE is tried on every object and belongs to one:
	 * the others refuse it silently (sp_debuginfo_check_used) */
	bool quiet;
};

/* Takes cand if it checks; a refusal is warned about (once per object)
 * and remembered. 0 when taken. */
static int try(struct search *s, const char *cand, enum sp_dbg_source src,
	       bool with_crc)
{
	char why[sizeof(s->r->why)];
	int rc = check(cand, s->w, with_crc, why, sizeof(why));

	if (rc == 0) {
		s->r->path = strdup(cand);
		s->r->source = src;
		return s->r->path ? 0 : -1;
	}
	if (rc < 0 && !s->quiet) {
		fprintf(stderr, "spanprobe: warning: %s: refused %s\n", s->w->path, why);
		sp_set_err(s->r->why, sizeof(s->r->why), "refused %s", why);
	}
	return -1;
}

static int tryf(struct search *s, enum sp_dbg_source src, bool with_crc,
		const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int tryf(struct search *s, enum sp_dbg_source src, bool with_crc,
		const char *fmt, ...)
{
	char p[4096];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(p, sizeof(p), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(p))
		return -1;
	return try(s, p, src, with_crc);
}

/* DIR/.build-id/xx/rest.debug */
static int in_build_id_dir(struct search *s, const char *dir, enum sp_dbg_source src)
{
	char id[SP_BUILD_ID_HEX];

	if (!s->w->id_len)
		return -1;
	hex(s->w->id, s->w->id_len, id, sizeof(id));
	return tryf(s, src, false, "%s/.build-id/%.2s/%s.debug", dir, id, id + 2);
}

/* A directory given with --debuginfo: a build-id tree (its root or its
 * .build-id), or a directory holding the file the debuglink names. */
static int in_given_dir(struct search *s, const char *dir)
{
	char id[SP_BUILD_ID_HEX];

	if (in_build_id_dir(s, dir, SP_DBG_OPTION) == 0)
		return 0;
	hex(s->w->id, s->w->id_len, id, sizeof(id));
	if (s->w->id_len &&
	    tryf(s, SP_DBG_OPTION, false, "%s/%.2s/%s.debug", dir, id, id + 2) == 0)
		return 0;
	return s->w->link ? tryf(s, SP_DBG_OPTION, true, "%s/%s", dir, s->w->link) : -1;
}

static int from_option(struct search *s)
{
	for (size_t i = 0; i < n_given; i++) {
		int rc;

		s->quiet = !given[i].is_dir;
		rc = given[i].is_dir ? in_given_dir(s, given[i].path) :
		     tryf(s, SP_DBG_OPTION, !s->w->id_len, "%s", given[i].path);
		s->quiet = false;
		if (rc)
			continue;
		given[i].used |= !given[i].is_dir;
		return 0;
	}
	return -1;
}

/* The standard build-id tree, under the process's root first (a
 * container's own packages), then the host's: the id makes either safe. */
static int from_build_id(struct search *s)
{
	char dir[4096];

	snprintf(dir, sizeof(dir), "%s%s", s->w->root, DEBUG_ROOT);
	if (in_build_id_dir(s, dir, SP_DBG_BUILD_ID) == 0)
		return 0;
	return s->w->root_len ? in_build_id_dir(s, DEBUG_ROOT, SP_DBG_BUILD_ID) : -1;
}

/* Beside the object, in .debug/ beside it, under /usr/lib/debug/DIR. */
static int from_debuglink(struct search *s)
{
	const struct want *w = s->w;
	const char *slash = strrchr(w->path, '/');
	int dl = slash ? (int)(slash - w->path) : 1;
	const char *dir = slash ? w->path : ".";

	if (!w->link)
		return -1;
	if (tryf(s, SP_DBG_DEBUGLINK, true, "%s%.*s/%s", w->root, dl, dir, w->link) == 0 ||
	    tryf(s, SP_DBG_DEBUGLINK, true, "%s%.*s/.debug/%s", w->root, dl, dir, w->link) == 0)
		return 0;
	if (w->path[0] != '/')
		return -1; /* /usr/lib/debug mirrors absolute paths only */
	return tryf(s, SP_DBG_DEBUGLINK, true, "%s%s%.*s/%s", w->root, DEBUG_ROOT, dl,
		    w->path, w->link);
}

static int from_debuginfod(struct search *s)
{
	char *p = NULL, why[sizeof(s->r->why)];
	int rc = sp_debuginfod_fetch(s->w->id, s->w->id_len, &p, why, sizeof(why));

	if (rc < 0) {
		fprintf(stderr, "spanprobe: warning: %s: %s; going on without it\n",
			s->w->path, why);
		sp_set_err(s->r->why, sizeof(s->r->why), "%s", why);
	}
	if (rc == 0)
		rc = try(s, p, SP_DBG_DEBUGINFOD, false);
	free(p);
	return rc == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------ */
/* The API.                                                            */

static void want_of(struct want *w, const char *path, const char *open_path, Elf *elf)
{
	size_t pl = strlen(path), ol = strlen(open_path);
	const void *id = NULL;
	ssize_t n;

	memset(w, 0, sizeof(*w));
	w->path = path;
	w->open_path = open_path;
	/* open_path = ROOT + path for objects reached through /proc/PID/root */
	w->root_len = ol > pl && strcmp(open_path + ol - pl, path) == 0 ? ol - pl : 0;
	w->root = w->root_len ? strndup(open_path, w->root_len) : "";
	if (!w->root) {
		w->root = "";
		w->root_len = 0;
	}
	n = dwelf_elf_gnu_build_id(elf, &id);
	if (n > 0 && (size_t)n <= sizeof(w->id)) {
		memcpy(w->id, id, (size_t)n);
		w->id_len = (size_t)n;
	}
	w->link = dwelf_elf_gnu_debuglink(elf, &w->crc);
	if (stat(open_path, &w->self))
		memset(&w->self, 0, sizeof(w->self));
}

static struct sp_debuginfo *remember(const char *open_path)
{
	struct cached *v = realloc(cache, (n_cache + 1) * sizeof(*v));

	if (!v)
		return NULL;
	cache = v;
	memset(&v[n_cache], 0, sizeof(v[n_cache]));
	if (!(v[n_cache].open_path = strdup(open_path)))
		return NULL;
	return &v[n_cache++].r;
}

/* only_given: a shared library, searched for in the --debuginfo paths
 * only (see sp_debuginfo_for). */
static const struct sp_debuginfo *lookup(const char *path, const char *open_path,
					 Elf *elf, bool only_given)
{
	static const struct sp_debuginfo none;
	struct sp_debuginfo *r;
	struct search s;
	struct want w;

	for (size_t i = 0; i < n_cache; i++)
		if (strcmp(cache[i].open_path, open_path) == 0)
			return &cache[i].r;
	if (!(r = remember(open_path)))
		return &none;
	want_of(&w, path, open_path, elf);
	hex(w.id, w.id_len, r->build_id, sizeof(r->build_id));
	if (!*first_obj && !only_given) {
		snprintf(first_obj, sizeof(first_obj), "%s", path);
		snprintf(first_id, sizeof(first_id), "%s", r->build_id);
	}
	s = (struct search){ .w = &w, .r = r };
	if (from_option(&s) && !only_given && from_build_id(&s) && from_debuglink(&s))
		from_debuginfod(&s);
	if (w.root_len)
		free((char *)w.root);
	return r;
}

const struct sp_debuginfo *sp_debuginfo_find(const char *path,
					     const char *open_path, Elf *elf)
{
	return lookup(path, open_path, elf, false);
}

const struct sp_debuginfo *sp_debuginfo_for(const char *path, const char *open_path,
					    bool executable)
{
	const struct sp_debuginfo *r = NULL;
	int fd;
	Elf *e;

	if (!executable && !n_given)
		return NULL;
	if ((fd = open(open_path, O_RDONLY | O_CLOEXEC)) < 0)
		return NULL;
	if (elf_version(EV_CURRENT) != EV_NONE &&
	    (e = elf_begin(fd, ELF_C_READ_MMAP, NULL))) {
		if (elf_kind(e) == ELF_K_ELF &&
		    (n_given || !has_section(e, ".debug_info") || !has_section(e, ".symtab")))
			r = lookup(path, open_path, e, !executable);
		elf_end(e);
	}
	close(fd);
	return r;
}

int sp_debuginfo_set_paths(const char *const *paths, size_t n, char *err,
			   size_t errlen)
{
	struct given *v = calloc(n ? n : 1, sizeof(*v));

	if (!v) {
		sp_set_err(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		struct stat st;

		if (stat(paths[i], &st)) {
			sp_set_err(err, errlen, "--debuginfo %s: %s", paths[i], strerror(errno));
			free(v);
			return -1;
		}
		v[i].path = paths[i];
		v[i].is_dir = S_ISDIR(st.st_mode);
	}
	free(given);
	given = v;
	n_given = n;
	return 0;
}

bool sp_debuginfo_forced(void)
{
	return n_given > 0;
}

static void file_id(struct given *g)
{
	int fd = open(g->path, O_RDONLY | O_CLOEXEC);
	Elf *e = fd >= 0 ? elf_begin(fd, ELF_C_READ_MMAP, NULL) : NULL;

	sp_build_id_hex(e, g->id, sizeof(g->id));
	if (e)
		elf_end(e);
	if (fd >= 0)
		close(fd);
}

int sp_debuginfo_check_used(char *err, size_t errlen)
{
	for (size_t i = 0; i < n_given; i++) {
		if (given[i].is_dir || given[i].used || !*first_obj)
			continue;
		file_id(&given[i]);
		sp_set_err(err, errlen, "--debuginfo %s: build-id %s, but %s has build-id %s: "
			   "not its debug file, and no other object's", given[i].path,
			   *given[i].id ? given[i].id : "(none)", first_obj,
			   *first_id ? first_id : "(none)");
		return -1;
	}
	return 0;
}

void sp_debuginfo_reset(void)
{
	for (size_t i = 0; i < n_cache; i++) {
		free(cache[i].open_path);
		free(cache[i].r.path);
	}
	free(cache);
	cache = NULL;
	n_cache = 0;
	free(given);
	given = NULL;
	n_given = 0;
	first_obj[0] = first_id[0] = '\0';
	sp_debuginfod_reset();
}
