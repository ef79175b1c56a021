// A pidfd names one process for as long as the descriptor is open, whatever happens to its pid number: once
// that process exits the descriptor polls readable, so a later look at /proc/<pid> can be told apart from a
// look at whoever got the pid next.
#include "addon.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

// Linux 6.5; libc headers may predate it. The value differs only on parisc and sparc.
#ifndef SO_PEERPIDFD
#if defined(__hppa__)
#define SO_PEERPIDFD 0x404B
#elif defined(__sparc__)
#define SO_PEERPIDFD 0x0056
#else
#define SO_PEERPIDFD 77
#endif
#endif

// Linux 5.3; the same number on every architecture.
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

namespace lanyard {

// peerPidfd(fd): a pidfd for the process that called connect(2), taken by the kernel at that moment, so it
// cannot name a process that reused the pid later; -1 when the kernel has no SO_PEERPIDFD (before 6.5).
napi_value PeerPidfd(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!IntArg(env, info, "peerPidfd(fd)", &fd)) return nullptr;
  int pidfd = -1;
  socklen_t len = sizeof(pidfd);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) == 0 && len == sizeof(pidfd)) {
    return Int(env, pidfd);
  }
  if (errno == ENOPROTOOPT || errno == EINVAL) return Int(env, -1);
  return ThrowErrno(env, "SO_PEERPIDFD", errno);
}

// pidfdOpen(pid): a pidfd for whatever process has `pid` now; -1 when the kernel has no pidfd_open (before
// 5.3). Close-on-exec, like every pidfd.
napi_value PidfdOpen(napi_env env, napi_callback_info info) {
  int32_t pid;
  if (!IntArg(env, info, "pidfdOpen(pid)", &pid)) return nullptr;
  long fd = syscall(SYS_pidfd_open, pid, 0);
  if (fd >= 0) return Int(env, fd);
  if (errno == ENOSYS) return Int(env, -1);
  return ThrowErrno(env, "pidfd_open", errno);
}

// pidfdExited(pidfd): whether the process has exited (a zombie counts: its pid may be reused once reaped).
napi_value PidfdExited(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!IntArg(env, info, "pidfdExited(pidfd)", &fd)) return nullptr;
  struct pollfd p = {fd, POLLIN, 0};
  int n;
  do {
    n = poll(&p, 1, 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return ThrowErrno(env, "poll(pidfd)", errno);
  napi_value out;
  if (napi_get_boolean(env, n > 0 && p.revents != 0, &out) != napi_ok) return nullptr;
  return out;
}

}  // namespace lanyard
