/* One small logging module for the daemon.
 *
 * In the foreground messages go to stderr; once daemonized they go to syslog.
 * The daemon is quiet by default: only warnings and errors are printed unless
 * -o log_level (or -d, which means debug) says otherwise.
 *
 * Errors that a busy mount can repeat thousands of times a second (the
 * source failing with EIO or ENOSPC, descriptors running out, replies the
 * kernel did not take, callers that cannot be tracked) go through
 * log_limited(): at most LOG_LIMIT_PER_SEC lines a second from each call
 * site, and the next line that gets through says how many were left out. */
#ifndef LOCKFS_LOG_H
#define LOCKFS_LOG_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

#define LOG_LIMIT_PER_SEC 5

void log_init(const char *ident, enum log_level level, bool use_syslog);
void log_set_syslog(bool use_syslog);
bool log_enabled(enum log_level level);
/* "error", "warn", "info" or "debug" into *out; -EINVAL otherwise. */
int log_level_parse(const char *s, enum log_level *out);
const char *log_level_name(enum log_level level);
void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* The state of one rate-limited call site. */
struct log_limit {
	pthread_mutex_t mu;
	uint64_t window;        /* the second the count is for */
	unsigned count;         /* lines printed in that second */
	unsigned long suppressed; /* lines left out since the last printed */
};
#define LOG_LIMIT_INIT { PTHREAD_MUTEX_INITIALIZER, 0, 0, 0 }

void log_msg_limited(struct log_limit *ll, enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_err(...)   log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) do { if (log_enabled(LOG_LVL_DEBUG)) log_msg(LOG_LVL_DEBUG, __VA_ARGS__); } while (0)
/* One limit per place in the code that logs. */
#define log_limited(level, ...) do { \
		static struct log_limit ll_ = LOG_LIMIT_INIT; \
		if (log_enabled(level)) \
			log_msg_limited(&ll_, level, __VA_ARGS__); \
	} while (0)

#endif
