// SO_PEERCRED for Node: the kernel's record of who connected to a Unix socket (pid, uid, gid at connect(2)
// time). Node has no built-in for it, and reading it later from /proc would race with the peer. Plain N-API
// (node_api.h), so the addon is ABI-stable across Node versions and needs no extra package.
//
// The other files add what the agent needs to keep that record honest afterwards: a pidfd for the peer
// (pidfd.cc), the inode of the peer's end of the connection (unix_diag.cc), and which processes hold that
// end (fd_scan.cc).
//
// One more call, for the server rather than the agent: SCHED_IDLE for the calling thread (the CRL build
// thread), which Node's os.setPriority (a nice value) cannot give.
#include "addon.h"

#if defined(__linux__)
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>

namespace lanyard {

napi_value Throw(napi_env env, const char* code, const char* message) {
  napi_throw_error(env, code, message);
  return nullptr;
}

napi_value ThrowErrno(napi_env env, const char* what, int err) {
  char message[256];
  snprintf(message, sizeof(message), "%s: %s", what, strerror(err));
  napi_value code, msg, error;
  if (napi_create_string_utf8(env, "ERR_IO", NAPI_AUTO_LENGTH, &code) != napi_ok) return nullptr;
  if (napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg) != napi_ok) return nullptr;
  if (napi_create_error(env, code, msg, &error) != napi_ok) return nullptr;
  if (SetInt(env, error, "errno", err) == nullptr) return nullptr;
  napi_throw(env, error);
  return nullptr;
}

napi_value SetInt(napi_env env, napi_value obj, const char* name, int64_t v) {
  napi_value value;
  if (napi_create_int64(env, v, &value) != napi_ok) return nullptr;
  if (napi_set_named_property(env, obj, name, value) != napi_ok) return nullptr;
  return obj;
}

napi_value Int(napi_env env, int64_t v) {
  napi_value value;
  if (napi_create_int64(env, v, &value) != napi_ok) return nullptr;
  return value;
}

bool IntArg(napi_env env, napi_callback_info info, const char* fn, int32_t* out) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok) return false;
  char message[128];
  napi_valuetype type;
  if (argc != 1 || napi_typeof(env, argv[0], &type) != napi_ok || type != napi_number ||
      napi_get_value_int32(env, argv[0], out) != napi_ok || *out < 0) {
    snprintf(message, sizeof(message), "%s takes one non-negative integer", fn);
    Throw(env, "ERR_INVALID_ARGUMENT", message);
    return false;
  }
  return true;
}

namespace {

// peercred(fd: number): { pid: number, uid: number, gid: number }
napi_value PeerCred(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!IntArg(env, info, "peercred(fd)", &fd)) return nullptr;
#if defined(SO_PEERCRED)
  struct ucred cred;
  socklen_t len = sizeof(cred);
  memset(&cred, 0, sizeof(cred));
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof(cred)) {
    return ThrowErrno(env, "SO_PEERCRED", errno);
  }
  napi_value out;
  if (napi_create_object(env, &out) != napi_ok) return nullptr;
  if (SetInt(env, out, "pid", cred.pid) == nullptr) return nullptr;
  if (SetInt(env, out, "uid", cred.uid) == nullptr) return nullptr;
  if (SetInt(env, out, "gid", cred.gid) == nullptr) return nullptr;
  return out;
#else
  return Throw(env, "ERR_UNSUPPORTED", "SO_PEERCRED is not available on this platform");
#endif
}

// idleThisThread(): boolean. The calling thread (on Linux a policy is a thread's own) to SCHED_IDLE: it runs
// only when no other thread wants the CPU, and any other thread that wakes takes the CPU from it at once, which
// a nice value (a smaller share, but still a full slice once picked) does not promise. Lowering a thread to it
// needs no privilege. False where the policy does not exist (not Linux) or the kernel refused it.
napi_value IdleThisThread(napi_env env, napi_callback_info /*info*/) {
  bool done = false;
#if defined(__linux__) && defined(SCHED_IDLE)
  struct sched_param param;
  memset(&param, 0, sizeof(param));
  done = sched_setscheduler(0, SCHED_IDLE, &param) == 0;
#endif
  napi_value out;
  if (napi_get_boolean(env, done, &out) != napi_ok) return nullptr;
  return out;
}

// longSliceThisThread(ms: number): boolean. The calling thread keeps its policy (SCHED_OTHER) and nice value,
// but asks the scheduler for a time slice of `ms` (sched_setattr's sched_runtime; EEVDF, Linux >= 6.12, clamps
// it to 0.1..100 ms). A thread that wakes with a shorter slice (every other thread: the default is a few ms) then
// preempts this one at once instead of waiting for its slice to run out, while this one keeps its share of the
// CPU. False where sched_setattr does not exist or refused; an older kernel accepts it and ignores the slice.
napi_value LongSliceThisThread(napi_env env, napi_callback_info info) {
  int32_t ms;
  if (!IntArg(env, info, "longSliceThisThread(ms)", &ms)) return nullptr;
  bool done = false;
#if defined(__linux__) && defined(SYS_sched_setattr)
  // struct sched_attr as the kernel defines it (first version, 48 bytes); glibc has no wrapper before 2.41.
  struct {
    uint32_t size;
    uint32_t sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime;
    uint64_t sched_deadline;
    uint64_t sched_period;
  } attr;
  memset(&attr, 0, sizeof(attr));
  attr.size = sizeof(attr);
  attr.sched_policy = SCHED_OTHER;
  errno = 0;
  // sched_setattr sets the nice value too: keep the thread's own.
  int nice = getpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)));
  if (errno == 0) {
    attr.sched_nice = nice;
    attr.sched_runtime = static_cast<uint64_t>(ms) * 1000000ULL;
    done = syscall(SYS_sched_setattr, 0, &attr, 0) == 0;
  }
#endif
  napi_value out;
  if (napi_get_boolean(env, done, &out) != napi_ok) return nullptr;
  return out;
}

bool Export(napi_env env, napi_value exports, const char* name, napi_callback cb) {
  napi_value fn;
  if (napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, nullptr, &fn) != napi_ok) return false;
  return napi_set_named_property(env, exports, name, fn) == napi_ok;
}

napi_value Init(napi_env env, napi_value exports) {
  if (!Export(env, exports, "peercred", PeerCred) || !Export(env, exports, "peerPidfd", PeerPidfd) ||
      !Export(env, exports, "pidfdOpen", PidfdOpen) || !Export(env, exports, "pidfdExited", PidfdExited) ||
      !Export(env, exports, "peerSocketInode", PeerSocketInode) ||
      !Export(env, exports, "socketHolders", SocketHolders) ||
      !Export(env, exports, "idleThisThread", IdleThisThread) ||
      !Export(env, exports, "longSliceThisThread", LongSliceThisThread)) {
    return nullptr;
  }
  // The flag as /proc/<pid>/fdinfo reports it; its value differs between architectures.
  if (SetInt(env, exports, "O_CLOEXEC", O_CLOEXEC) == nullptr) return nullptr;
  return exports;
}

}  // namespace
}  // namespace lanyard

NAPI_MODULE(NODE_GYP_MODULE_NAME, lanyard::Init)
