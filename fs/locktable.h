/* The lock table: who holds each file, who waits for it, and in what order.
 *
 * Pure logic. No FUSE, no system calls, no threads, no clock: the caller
 * passes the time ("now", nanoseconds on any monotonic scale) into every call
 * and reports owner exits through lt_owner_exit(). That is what lets the unit
 * tests drive every transition with a fake clock.
 *
 * The table is not thread-safe; its single user (fs/locking.c) serializes
 * all calls with one mutex.
 *
 * Vocabulary
 *   file    an opaque non-zero 64-bit key (the daemon derives it from the
 *           source file's st_dev/st_ino).
 *   owner   an opaque non-zero 64-bit id, one per calling thread. Ids are
 *           never reused, so a recycled pid can never inherit a dead owner.
 *   hold    an owner's claim on a file: a count of open handles, or a lease
 *           (no handle open, claim kept for a short time after a read).
 *   request a caller-allocated struct lt_request: either granted at once,
 *           refused at once, or parked in the file's FIFO queue and decided
 *           later by another call (release, tick, exit, cancel...). Decided
 *           requests are handed back through lt_take_decided().
 *
 * The rules (docs/semantics.md is the user-facing statement of them):
 *   - LT_EXCL holds exclude every other owner's holds. LT_SHARED holds
 *     (pure readers) coexist with each other and with LT_UPDATE holds.
 *     LT_UPDATE holds (reads that may be followed by a write: update
 *     intent) exclude each other and LT_EXCL, never LT_SHARED.
 *   - An owner that already holds a file is granted any further request on it
 *     at once (re-entry), except that a shared holder asking for LT_EXCL
 *     must wait for the other shared holders to leave; such an upgrade is
 *     queued at the head of the queue.
 *   - Otherwise requests are granted strictly in FIFO order: a request is
 *     granted only when it is compatible with the current holds and nothing
 *     is queued before it. On every change the queue head is granted, then
 *     the next, as long as they are compatible (a run of shared readers).
 *   - When an exclusive or update-intent hold's handle count drops to zero:
 *       * if the most recently granted request in this hold was a write
 *         (LT_F_WRITE), the critical section is over: the hold ends at once;
 *       * else, if the request had lease_ns > 0 and the hold acts as
 *         LT_EXCL or LT_UPDATE (not shared: calm, long or broken holds
 *         leave no lease), the hold becomes a lease that ends at
 *         now + lease_ns (no later than the section it joined);
 *       * a dead owner's hold goes to its heir instead (see lt_owner_exit),
 *         as a lease with the same deadline.
 *     Shared holds end when their count drops to zero (no lease).
 *   - A lease also ends when its owner is granted or queues a read request
 *     (LT_F_WRITE clear) on a *different* file: the owner has moved on, which
 *     keeps readers such as grep -r from holding back other readers. A
 *     barrier is no read: it does not end a lease elsewhere (reading a file,
 *     writing a temporary and renaming it over the file keeps the lease). An
 *     owner has at most one lease at a time: a new lease (its own or an
 *     inherited one) ends the older one.
 *   - A request that would wait is refused with -EAGAIN when LT_F_NONBLOCK is
 *     set (but see peeks below), and with -EDEADLK when waiting would close a
 *     cycle in the wait-for graph (owner -> file it waits for -> owners
 *     holding it -> ...). Leases count as holds. As queues are FIFO, a
 *     request with anything queued before it waits for every holder of its
 *     file, whatever the classes.
 *     The walk visits at most LT_DEADLOCK_WALK_MAX edges; a longer chain is
 *     assumed to be no cycle.
 *   - A parked request with a deadline fails with -ETIMEDOUT at lt_tick()
 *     once now >= deadline; lt_cancel() removes one with -EINTR.
 *
 * Peeks (non-blocking reads)
 *   Programs such as grep -r open every file with O_NONBLOCK only to avoid
 *   hanging on fifos. Failing them whenever another reader has the file, or
 *   a lease on it, would break plain readers, so: a request with
 *   LT_F_NONBLOCK, without LT_F_WRITE and without LT_F_BARRIER, that cannot
 *   be granted now, and whose conflicting holders are all *not writing*, is
 *   answered LT_PEEK ("go ahead without a hold"). A holder is writing while
 *   it has handles open and either its most recent grant on the file was a
 *   write or a barrier, or a handle opened with LT_F_WRITE (or a barrier) is
 *   still open (lt_release's `write` says which handle closes). Shared
 *   holders and lease holders are never writing. Queued waiters do not
 *   matter: a peek takes nothing. If some conflicting holder is writing the
 *   request fails with -EAGAIN as before. A peek records nothing (no hold, no
 *   lease, nothing to release, the requester's lease elsewhere is kept, it is
 *   no critical section); it only counts in the file's `peeks` statistic,
 *   not in `acquisitions`. Non-blocking writes and barriers never peek;
 *   once reader_wait_ns is configured, a non-blocking write that only readers stand
 *   in the way of, with nothing queued, is parked like a blocking one
 *   instead of refused, so it waits at most reader_wait_ns.
 *
 * Programs (version 2 of the contract: joins happen only between requests
 * whose lt_request.family is filled; calm files, long reads and bounded
 * reader waits only once lt_configure turned them on)
 *   - Every request names its owner's process and ancestors in `family`
 *     (family[0] the process, family[1] its parent, ...; 0 ends the list).
 *     A hold does not stand in the way of a request from the same program:
 *       * a hold of an ancestor process (open or lease) is *joined* by any
 *         request of its descendants: a child may use what its waiting
 *         parent holds (`while read l; do sed -i ... f; done < f`);
 *       * a hold of a sibling thread is joined by writes and barriers (a
 *         runtime that reads on one pool thread and writes on another is
 *         one flow of work), and by reads when the hold was inherited (its
 *         thread or child exited); a sibling's *read* waits for a live
 *         sibling's read hold or lease, so threads racing a
 *         read-modify-write are still serialized.
 *     A joining request is granted ahead of the queue, like a re-entry. A
 *     hold made by joining a lease can not outlast that lease (joins never
 *     extend a critical section), so a loop of children re-reading a file
 *     cannot keep other programs out for longer than one lease.
 *   - Write closes end the section for the whole program: when a hold of
 *     owner o whose most recent grant was a write or barrier loses its last
 *     handle, the leases held on the file by o's process (any thread) and
 *     by its ancestors end too.
 *   - Learning (calm files): an LT_UPDATE lease that ends unused (expired,
 *     ended by its owner moving on, or by an exit without heir) while a
 *     read waits for the file, on a file not written for at least
 *     calm_after_ns, makes the file *calm* (a lease that was stretched
 *     teaches nothing: its program was at work on a busy machine): from then on LT_UPDATE requests
 *     and holds on it count as LT_SHARED and leave no lease. Any write or
 *     barrier granted on the file (or lt_file_written) makes it hot again.
 *   - Advisory files: lt_advisory() says programs lock the file themselves
 *     (flock, fcntl). The table steps aside: every later request on it is
 *     answered LT_PEEK (no hold) and its holds stop excluding anyone.
 *   - Long reads: an LT_UPDATE hold whose handles stay open (without a
 *     write) for long_read_ns stops excluding other readers: it counts as
 *     LT_SHARED from then on and leaves no lease.
 *   - Bounded reader waits: a write or barrier request parked for
 *     reader_wait_ns *breaks* the holds in its way that are not writing
 *     (readers, leases): they stop excluding anyone, until they end, and
 *     holds that are not writing granted after that (readers that were
 *     queued ahead of it) do not hold it back either. lockstat counts it.
 *   lt_owner_exit() passes leases and bequests to the heir as inherited
 *   holds, tagged with the heir's process, and a lease passes on at every
 *   normal exit within its time (cat -> timeout -> shell).
 *
 * Replaced and removed files (marks)
 *   The kernel resolves a name to a file before it sends the open, so an
 *   open may arrive for a file that a rename has just replaced under that
 *   name, or that an unlink removed. lt_replace(old, new) therefore leaves a
 *   forwarding mark on `old`, and lt_gone(file) a "gone" mark on `file`.
 *   A later non-barrier lt_acquire() on a marked file:
 *     - follows the forwarding chain (old -> new -> newer ..., at most
 *       LT_FORWARD_MAX hops) to the file's current incarnation and is
 *       handled there exactly like a request moved by lt_replace: when it
 *       can be granted at once, an LT_EXCL request's owner gets a lease on
 *       the current file of max(lease_ns, LT_RETRY_LEASE_NS) (an owner that
 *       holds that file already keeps its hold, a lease there being
 *       stretched to that length) and the call returns -ESTALE with
 *       granted_file = the current file; otherwise it parks
 *       there and its later grant does the same; a non-blocking one fails
 *       with -EAGAIN, except that a read the peek rule would let in on the
 *       current file gets -ESTALE at once without a lease (its retry peeks
 *       there);
 *     - ends in a "gone" file: -ESTALE at once, no lease.
 *   The kernel then looks the name up again and retries the open once; the
 *   retry lands on the current file, finds the lease held for its owner and
 *   re-enters at once. Two exceptions keep that single retry from ever
 *   failing with -ESTALE again:
 *     - an owner that holds the marked file itself (open or lease) re-enters
 *       it, unforwarded;
 *     - the first request an owner makes after a mark or a move answered it
 *       -ESTALE is never answered -ESTALE by a mark when it asks for the file
 *       it asked for then or the file it was sent to (that is the retry: it
 *       reached a file by another name, or through /proc/PID/fd); it is
 *       served on the file it asks for. When it came back to the old file,
 *       the lease the forward made on the new one ends at once. The owner
 *       record is kept for this until that next request or the owner's
 *       exit.
 *   Barriers are never forwarded or refused by marks: they concern the inode
 *   they name.
 *   lt_replace(old, new) also clears any mark on `new` (it has a name now),
 *   so the chains can never loop. A mark stays until lt_forget(), which the
 *   daemon calls when it forgets the inode (its id may then be reused for a
 *   new file); files that led to the forgotten one then lead where it led,
 *   so forgetting a file in the middle of a chain breaks no chain.
 *   Marks cost one small record (LT_MARK_BYTES) per replaced or removed file
 *   that the daemon still knows, plus one per current file that such marks
 *   lead to; nothing at all while no file was replaced or removed.
 */
#ifndef LOCKFS_LOCKTABLE_H
#define LOCKFS_LOCKTABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LT_DEADLOCK_WALK_MAX 4096
/* The lease given to a waiter whose file was replaced by a rename while it
 * waited (see lt_replace) when its own lease_ns is shorter. */
#define LT_RETRY_LEASE_NS (500ull * 1000 * 1000)
/* How far lt_acquire() follows forwarding marks (see above). */
#define LT_FORWARD_MAX 64
/* The memory one mark costs, allocation overhead aside. */
#define LT_MARK_BYTES 64
/* Positive return of lt_acquire(): open without a hold (see peeks above,
 * and advisory files). */
#define LT_PEEK 1
/* How many processes a request's family names (itself and ancestors). */
#define LT_FAMILY_MAX 8

typedef uint64_t lt_file_t;
typedef uint64_t lt_owner_t;
/* A process, by a key its caller makes unique for the boot (0: unknown). */
typedef uint64_t lt_proc_t;

enum lt_class {
	LT_EXCL,   /* exclusive: writers, barriers, strict readers */
	LT_SHARED, /* shared: pure readers */
	LT_UPDATE, /* update intent: a read that may be followed by a write */
};

/* Version 2 behaviour, all off (0) in a new table. */
struct lt_config {
	uint64_t calm_after_ns;  /* learn calm files; 0: never */
	uint64_t long_read_ns;   /* LT_UPDATE holds open this long share; 0: never */
	uint64_t reader_wait_ns; /* writers break readers after this; 0: never */
	/* How many times a lease may be stretched by its own length because
	 * the machine is too busy for its holder to have run (see
	 * lt_set_busy_hook); 0: never. */
	unsigned lease_stretch_max;
};


enum lt_flags {
	LT_F_WRITE    = 1 << 0, /* the open may write: closing it ends the section */
	LT_F_NONBLOCK = 1 << 1, /* fail with -EAGAIN instead of waiting */
	LT_F_BARRIER  = 1 << 2, /* rename/unlink/truncate: not a handle, see below */
};

enum lt_state {
	LT_REQ_IDLE,     /* not known to the table */
	LT_REQ_WAITING,  /* parked in a queue */
	LT_REQ_DECIDED,  /* on the decided list, waiting for lt_take_decided() */
	LT_REQ_DONE,     /* handed back */
};

/* Allocated and owned by the caller; the table links it while it waits. The
 * caller must not free or reuse it until it comes back from lt_acquire()
 * with a final status or from lt_take_decided(). */
struct lt_request {
	/* Set by the caller before lt_acquire(). */
	lt_file_t file;
	lt_owner_t owner;
	enum lt_class cls;
	unsigned flags;        /* enum lt_flags */
	uint64_t lease_ns;     /* lease after a read-only close; 0 = none */
	uint64_t deadline;     /* absolute time to give up waiting; 0 = never */
	lt_proc_t family[LT_FAMILY_MAX]; /* the owner's process, then its
	                          ancestors; all 0 when unknown (no joins) */
	void *cookie;          /* for the caller */

	/* Set by the table. */
	int status;            /* 0 granted, LT_PEEK, or -EAGAIN -EDEADLK
	                          -ETIMEDOUT -EINTR -ESTALE (-ENOMEM if the
	                          table could not allocate the hold at grant
	                          time) */
	lt_file_t granted_file;/* the file the grant is on (differs from file
	                          after lt_replace or a forwarding mark: then
	                          status is -ESTALE); 0 when nothing was
	                          granted (refusals, peeks, "gone") */
	uint64_t enqueued_at;  /* when it started waiting (== granted time if
	                          granted at once) */
	enum lt_state state;
	struct lt_request *q_next, *q_prev; /* decided list (queues are kept
	                                       in the table's own records) */
};

/* What one file looks like, for lockstat. */
enum lt_hold_state {
	LT_HS_NORMAL,
	LT_HS_LONG,    /* an update-intent read held so long it now shares */
	LT_HS_BROKEN,  /* a reader a waiting writer stopped waiting for */
};
struct lt_holder_view {
	lt_owner_t owner;
	enum lt_class cls;     /* effective: LT_UPDATE on a calm file is shared */
	unsigned handles;      /* 0 = lease */
	uint64_t since;        /* when this hold began */
	uint64_t lease_until;  /* valid when handles == 0 */
	enum lt_hold_state state;
	bool inherited;        /* passed on by an exited thread or child */
	bool joined;           /* granted by joining its program's hold */
};

/* What the table learned about a file (lt_file_info). */
struct lt_file_info {
	bool calm;             /* readers share (see learning above) */
	bool advisory;         /* programs lock it themselves */
	uint64_t last_write;   /* when a write was last granted; 0: never */
};

struct lock_table;

struct lock_table *lt_new(void);
/* Turns on version 2 behaviour (see struct lt_config). */
void lt_configure(struct lock_table *t, const struct lt_config *cfg);
/* Asked when a lease of `owner` is due while it may still be stretched:
 * true when the owner may simply not have had the CPU to make its write (a
 * read-modify-write on a loaded machine stays one critical section). The
 * daemon answers true when the machine has more runnable tasks than CPUs
 * and the owner is runnable or waiting in the kernel, not asleep; tests
 * inject what they like. */
typedef bool (*lt_busy_fn)(void *arg, lt_owner_t owner);
void lt_set_busy_hook(struct lock_table *t, lt_busy_fn fn, void *arg);
/* Frees the table. Parked requests are not touched (the caller owns them). */
void lt_free(struct lock_table *t);

/* Asks for a file. Returns
 *   0            granted: the hold now counts one more handle (for a barrier:
 *                see lt_barrier_done);
 *   LT_PEEK      a non-blocking read may open the file without a hold
 *                (nothing to release, see peeks above);
 *   -EINPROGRESS parked: the decision comes later through lt_take_decided();
 *   -ESTALE      the file was replaced (a lease on its current incarnation
 *                may now be held for the owner, see marks above) or removed:
 *                the caller is to look the name up again;
 *   -EAGAIN      would wait and LT_F_NONBLOCK was set (and no peek);
 *   -EDEADLK     waiting would close a cycle;
 *   -EINTR       the owner was already reported exited (while the table
 *                still remembers it: its handles are not all closed);
 *   -EINVAL      file or owner is 0;
 *   -ENOMEM.
 * A read that has to wait ends the owner's lease on another file before the
 * cycle check (the lease may be what closes the cycle).
 * req->status mirrors the return value unless it is -EINPROGRESS. */
int lt_acquire(struct lock_table *t, struct lt_request *req, uint64_t now);

/* One handle granted on `file` to `owner` is closed. `write` says whether
 * that handle was opened with LT_F_WRITE (for the record: the lease decision
 * uses the most recently granted request, see above). Releasing a handle
 * that is not held is ignored and returns -ENOENT; 0 otherwise. */
int lt_release(struct lock_table *t, lt_file_t file, lt_owner_t owner,
	       bool write, uint64_t now);

/* A barrier (LT_F_BARRIER) granted by lt_acquire() counts as a write handle
 * for the duration of the operation; this releases it. A barrier by a lease
 * holder therefore ends the lease, handing the file to the next waiter. */
int lt_barrier_done(struct lock_table *t, lt_file_t file, lt_owner_t owner,
		    uint64_t now);

/* Removes a parked request (a FUSE interrupt): it becomes decided with
 * -EINTR and is returned by lt_take_decided() like any other. Returns 0 if it
 * was waiting, -ENOENT if it was already decided. */
int lt_cancel(struct lock_table *t, struct lt_request *req, uint64_t now);

/* The owner has exited. Its parked requests fail with -EINTR; its lease, and
 * any hold whose last handle closes later, go to `heir` (0 = none) as a lease
 * ending at the original deadline (or now + that hold's lease_ns when its
 * handles were still open). The heir must be alive when this is called; if
 * it exits before those handles close, what it would have inherited passes
 * to its own heir (or ends, when it has none). An exited owner never gets a
 * lease itself. */
void lt_owner_exit(struct lock_table *t, lt_owner_t owner, lt_owner_t heir,
		   uint64_t now);
/* The same, naming the heir's process (its holds then join as that
 * process's: see programs above). */
void lt_owner_exit2(struct lock_table *t, lt_owner_t owner, lt_owner_t heir,
		    lt_proc_t heir_proc, uint64_t now);

/* Programs lock `file` themselves (flock, fcntl): see advisory files. */
void lt_advisory(struct lock_table *t, lt_file_t file, uint64_t now);
/* `file` was written behind the table's back (it changed on the source):
 * it is hot again (see learning). */
void lt_file_written(struct lock_table *t, lt_file_t file, uint64_t now);
/* 0 and *out filled, -ENOENT when the table knows nothing of the file. */
int lt_file_info(const struct lock_table *t, lt_file_t file, struct lt_file_info *out);

/* `old_file` was replaced under its name by `new_file` (a rename over it).
 * old_file gets a forwarding mark to new_file and new_file loses any mark of
 * its own (see marks above; a mark that cannot be allocated is skipped, and
 * late opens then reach old_file as before). When old_file keeps another
 * name (a hard link), each open through that name costs one -ESTALE round
 * trip: its retry comes back to old_file and is served there.
 * Requests parked on old_file move to the tail of new_file's queue. When one
 * of them is granted, its owner gets a lease on new_file
 * (max(lease_ns, LT_RETRY_LEASE_NS)) and the request status is -ESTALE, so
 * the kernel looks the name up again and the retried open re-enters the
 * lease at once (an LT_SHARED request gets -ESTALE and no lease: shared holds
 * never lease). A moved request whose owner already holds new_file is decided
 * at once. Holds on old_file are untouched. */
void lt_replace(struct lock_table *t, lt_file_t old_file, lt_file_t new_file,
		uint64_t now);

/* `file` lost its last name (unlinked). Requests parked on it fail with
 * -ESTALE: the kernel retries the open by name and finds what is there now.
 * It also gets a "gone" mark (see marks above). */
void lt_gone(struct lock_table *t, lt_file_t file, uint64_t now);

/* The daemon forgot `file` (it freed its inode; the id may be reused for a
 * new file): drops its mark, if any, and files marked as replaced by it are
 * from then on replaced by what replaced it (or gone, if it was). A file
 * without a mark keeps its name and id: nothing changes. Holds, leases and
 * waiters are untouched. What was learned of an idle file (calm, advisory,
 * last write) goes: a new file with the id must learn afresh. Statistics
 * stay, except those of a file marked "gone" (lt_gone: it has no name left,
 * so the next file with its id is another one): they go, and the file
 * reads as never seen once nothing else keeps its record. */
void lt_forget(struct lock_table *t, lt_file_t file);
/* The same, for a file the daemon knows to have no name left (no link on
 * the inode it frees: removed through the mount or behind its back, or
 * replaced by a rename): its statistics go, marked or not. */
void lt_forget_dead(struct lock_table *t, lt_file_t file);

/* Expires leases and wait deadlines due at `now`. */
void lt_tick(struct lock_table *t, uint64_t now);

/* The earliest future lease end or wait deadline, UINT64_MAX if none. */
uint64_t lt_next_deadline(const struct lock_table *t);

/* Pops one decided request (oldest first), NULL when none. Its state becomes
 * LT_REQ_DONE and the table forgets it. */
struct lt_request *lt_take_decided(struct lock_table *t);

/* Contention statistics per file, kept from the first acquisition until
 * lt_stats_reset() (or until a removed file is forgotten: see lt_forget),
 * including for files that are idle now. A contention is a
 * request that had to wait (parked), whatever its outcome. Wait times are
 * recorded when a parked request is decided; hold times when a hold ends
 * (lease time included; a hold passed to an heir has not ended). Waits and
 * failures of a request moved by lt_replace() or forwarded by a mark count
 * for the file it asked for, its grant (an acquisition, lease or not) for the
 * file it got. Peeks count for the file asked for. */
#define LT_HIST_BUCKETS 48 /* bucket i counts waits in [2^i, 2^(i+1)) ns */
struct lt_stats {
	uint64_t acquisitions;   /* grants, immediate or after waiting */
	uint64_t contentions;    /* requests that were parked */
	uint64_t waits;          /* parked requests decided (any outcome) */
	uint64_t wait_total_ns, wait_min_ns, wait_max_ns;
	uint64_t holds;          /* holds ended */
	uint64_t hold_total_ns, hold_max_ns;
	uint64_t fail_eagain, fail_edeadlk, fail_timeout, fail_intr;
	uint64_t peeks;          /* non-blocking reads let in without a hold */
	uint64_t joins;          /* grants made by joining the program's hold */
	uint64_t broken;         /* reader holds a waiting writer broke */
	uint64_t calm_learned;   /* times the file became calm */
	uint64_t advisory_passes;/* opens let through on an advisory file */
	uint32_t wait_hist[LT_HIST_BUCKETS];
};
/* 0 and *out filled, or -ENOENT if the file has no statistics. */
int lt_stats_get(const struct lock_table *t, lt_file_t file, struct lt_stats *out);
/* Calls fn for every file with statistics; stops early if fn returns non-zero. */
int lt_foreach_stats(const struct lock_table *t,
		     int (*fn)(void *arg, lt_file_t file, const struct lt_stats *s),
		     void *arg);
/* Zeroes every file's statistics. Locks and what the table learned of the
 * files (lt_file_info) are untouched: no request is answered differently. */
void lt_stats_reset(struct lock_table *t);
/* An upper estimate of the pct-th percentile wait, 0 when there were none:
 * the top of the histogram bucket where that percentile falls, or the
 * longest wait when that is smaller. It is never above wait_max_ns nor below
 * wait_min_ns, and less than twice the true percentile (bucket 0, waits of 0
 * or 1 ns, reads 1 at most). */
uint64_t lt_stats_wait_percentile(const struct lt_stats *s, double pct);

/* Inspection for lockstat and tests. */
size_t lt_file_count(const struct lock_table *t);     /* files with any state */
size_t lt_mark_count(const struct lock_table *t);     /* files marked */
size_t lt_hold_count(const struct lock_table *t);     /* holds of all files */
size_t lt_waiter_count(const struct lock_table *t);   /* parked requests */
/* Fills up to `max` holders of `file`; returns the total number (out may be
 * NULL when max is 0, to count). */
size_t lt_holders(const struct lock_table *t, lt_file_t file,
		  struct lt_holder_view *out, size_t max);
/* Fills up to `max` parked requests of `file` in queue order; returns the
 * total number (out may be NULL when max is 0). */
size_t lt_waiters(const struct lock_table *t, lt_file_t file,
		  const struct lt_request **out, size_t max);
/* Calls fn for every file with any state; stops early if fn returns non-zero. */
int lt_foreach_file(const struct lock_table *t,
		    int (*fn)(void *arg, lt_file_t file), void *arg);

#endif
