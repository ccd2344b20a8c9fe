/* libFuzzer target: the daemon's side of the control file.
 *
 * Feeds each input as one write(2) to a control handle of a daemon whose
 * lock table holds a few locks, and checks what lockfs promises about
 * hostile writers: the request parser accepts exactly the three request
 * lines, nothing crashes or leaks, and whatever the handle reads back
 * afterwards is a complete, well-formed reply (lockstat's own parser must
 * accept it). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "control.h"
#include "ctlproto.h"
#include "locking.h"
#include "owner.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct lockfs_config cfg = {
	.lease_ms = 250, .long_read_ms = 1000, .reader_wait_ms = 5000, .calm_after_ms = 2000,
};
static struct locking *lk;
static struct control *ctl;

/* Names with characters that need escaping, and one file without a name. */
static int path_of(void *arg, lt_file_t file, char *buf, size_t len)
{
	(void)arg;
	if (file == 3)
		return -ENOENT;
	snprintf(buf, len, "dir %llu/na\tme\n\\%llu", (unsigned long long)file,
		 (unsigned long long)file);
	return 0;
}

static void granted(struct lk_wait *w, int status)
{
	(void)w;
	if (status != 0)
		abort();
}

static void setup(void)
{
	static struct lk_wait w[4];
	lt_owner_t me;

	cfg.mountpoint = "/mnt/fuzz";
	cfg.source = "/src/fu\tzz";
	if (locking_new(&lk, &cfg) != 0 ||
	    control_new(&ctl, lk, path_of, NULL, &cfg) != 0 ||
	    owner_lookup(locking_owners(lk), gettid(), &me) != 0)
		abort();
	for (int i = 0; i < 3; i++) {
		w[i].lt.file = (lt_file_t)(i + 1);
		w[i].lt.owner = me;
		w[i].lt.cls = LT_EXCL;
		w[i].lt.flags = i == 0 ? 0 : LT_F_WRITE;
		w[i].lt.lease_ns = 1000000000ull;
		w[i].resume = granted;
		locking_acquire(lk, &w[i]);
	}
	/* A read-only close: the first file is a lease from now on. */
	locking_release(lk, 1, me, false);
	/* A read with update intent, on a file programs lock themselves
	 * (replies carry CLASS update and a file record). */
	w[3].lt.file = 4;
	w[3].lt.owner = me;
	w[3].lt.cls = LT_UPDATE;
	w[3].resume = granted;
	locking_acquire(lk, &w[3]);
	locking_advisory(lk, 4);
}

static bool is_valid_request(const uint8_t *d, size_t n)
{
	static const char *ok[] = { "snapshot", "stats", "reset" };

	for (size_t i = 0; i < 3; i++) {
		size_t m = strlen(ok[i]);

		if ((n == m || (n == m + 1 && d[m] == '\n')) && memcmp(d, ok[i], m) == 0)
			return true;
	}
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct control_handle *h;
	struct ctl_reply r;
	char buf[4096], err[256], *reply = NULL;
	size_t len = 0;
	int kind, rc;

	if (!ctl)
		setup();
	kind = control_parse_request((const char *)data, size);
	if ((kind >= 0) != is_valid_request(data, size))
		abort();

	if (control_open(ctl, &h) != 0)
		abort();
	/* Half the inputs come from the mount's owner, half from a stranger. */
	rc = control_write(ctl, h, (const char *)data, size,
			   size && (data[0] & 1) ? getuid() : getuid() + 1);
	if (rc != 0 && rc != -EINVAL && rc != -EPERM)
		abort();
	for (;;) {
		ssize_t n = control_read(ctl, h, buf, 1 + size % sizeof(buf), (off_t)len);

		if (n < 0)
			abort();
		if (n == 0)
			break;
		reply = realloc(reply, len + (size_t)n);
		if (!reply)
			abort();
		memcpy(reply + len, buf, (size_t)n);
		len += (size_t)n;
	}
	control_release(h);
	if (ctl_parse_reply(reply, len, &r, err, sizeof(err)) != 0) {
		fprintf(stderr, "daemon reply does not parse: %s\n", err);
		abort();
	}
	if ((r.error != NULL) != (rc != 0))
		abort();
	ctl_reply_free(&r);
	free(reply);
	return 0;
}
