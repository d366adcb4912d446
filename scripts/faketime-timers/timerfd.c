/*
 * Loaded before Debian's libfaketime (scripts/test's year-ahead run): passes timerfd_settime straight to the kernel.
 *
 * libfaketime 0.9.10 rewrites absolute timerfd deadlines as if every clock were faked. With
 * FAKETIME_DONT_FAKE_MONOTONIC=1 (only the wall clock moves) that turns libdispatch's CLOCK_MONOTONIC and
 * CLOCK_BOOTTIME deadlines negative (EINVAL), and without it into deadlines decades away: either way Swift's
 * Task.sleep and every dispatch timer never fire and the tests hang. Tern's timers measure elapsed time, which must
 * not move; only the time of day is a year ahead.
 */
#define _GNU_SOURCE
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <unistd.h>

int timerfd_settime(int fd, int flags, const struct itimerspec *new_value, struct itimerspec *old_value) {
    return (int)syscall(SYS_timerfd_settime, fd, flags, new_value, old_value);
}

int timerfd_gettime(int fd, struct itimerspec *curr_value) {
    return (int)syscall(SYS_timerfd_gettime, fd, curr_value);
}
