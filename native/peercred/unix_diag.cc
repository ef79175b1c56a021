// The inode of the other end of a connected Unix socket. The kernel exposes it only through sock_diag
// netlink (UNIX_DIAG_PEER, what `ss -x` shows as the peer): with it, the agent can find which processes
// hold the client's end of a connection in their descriptor tables (/proc/<pid>/fd/* -> socket:[inode]).
#include "addon.h"

#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

namespace lanyard {

namespace {

// The UNIX_DIAG_PEER of socket `ino`: >= 0 (0: the peer's end is closed), or -errno.
int64_t QueryPeer(uint32_t ino) {
  int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (nl < 0) return -errno;
  struct {
    struct nlmsghdr nlh;
    struct unix_diag_req req;
  } msg;
  memset(&msg, 0, sizeof(msg));
  msg.nlh.nlmsg_len = sizeof(msg);
  msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nlh.nlmsg_flags = NLM_F_REQUEST;
  msg.nlh.nlmsg_seq = 1;
  msg.req.sdiag_family = AF_UNIX;
  msg.req.udiag_states = ~0U;
  msg.req.udiag_ino = ino;
  msg.req.udiag_show = UDIAG_SHOW_PEER;
  msg.req.udiag_cookie[0] = INET_DIAG_NOCOOKIE;
  msg.req.udiag_cookie[1] = INET_DIAG_NOCOOKIE;
  struct sockaddr_nl kernel;
  memset(&kernel, 0, sizeof(kernel));
  kernel.nl_family = AF_NETLINK;
  int64_t result = -ENOENT;
  if (sendto(nl, &msg, sizeof(msg), 0, reinterpret_cast<struct sockaddr*>(&kernel), sizeof(kernel)) < 0) {
    result = -errno;
    close(nl);
    return result;
  }
  alignas(struct nlmsghdr) char buf[8192];
  ssize_t n;
  do {
    n = recv(nl, buf, sizeof(buf), 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    result = -errno;
    close(nl);
    return result;
  }
  int len = static_cast<int>(n);
  for (struct nlmsghdr* h = reinterpret_cast<struct nlmsghdr*>(buf); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
    if (h->nlmsg_type == NLMSG_ERROR) {
      const struct nlmsgerr* e = static_cast<const struct nlmsgerr*>(NLMSG_DATA(h));
      result = e->error < 0 ? e->error : -EPROTO;
      break;
    }
    if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY) continue;
    const struct unix_diag_msg* m = static_cast<const struct unix_diag_msg*>(NLMSG_DATA(h));
    if (m->udiag_ino != ino) continue;
    // No UNIX_DIAG_PEER attribute: the socket has no peer (never connected, or the peer is gone).
    result = 0;
    const char* attrs = reinterpret_cast<const char*>(m) + NLMSG_ALIGN(sizeof(*m));
    int left = static_cast<int>(h->nlmsg_len) - static_cast<int>(NLMSG_LENGTH(sizeof(*m)));
    while (left >= static_cast<int>(NLA_HDRLEN)) {
      const struct nlattr* a = reinterpret_cast<const struct nlattr*>(attrs);
      if (a->nla_len < NLA_HDRLEN || a->nla_len > left) break;
      if ((a->nla_type & NLA_TYPE_MASK) == UNIX_DIAG_PEER && a->nla_len >= NLA_HDRLEN + sizeof(uint32_t)) {
        uint32_t peer;
        memcpy(&peer, attrs + NLA_HDRLEN, sizeof(peer));
        result = peer;
      }
      attrs += NLA_ALIGN(a->nla_len);
      left -= NLA_ALIGN(a->nla_len);
    }
    break;
  }
  close(nl);
  return result;
}

}  // namespace

// peerSocketInode(fd): the inode of the peer's end of the connected Unix socket `fd`; 0 when the peer's end
// is already closed. Throws ERR_IO (errno ENOENT, EPROTONOSUPPORT, ...) when the kernel cannot say.
napi_value PeerSocketInode(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!IntArg(env, info, "peerSocketInode(fd)", &fd)) return nullptr;
  struct stat st;
  if (fstat(fd, &st) != 0) return ThrowErrno(env, "fstat", errno);
  if (!S_ISSOCK(st.st_mode)) return Throw(env, "ERR_INVALID_ARGUMENT", "peerSocketInode(fd): not a socket");
  int64_t peer = QueryPeer(static_cast<uint32_t>(st.st_ino));
  if (peer < 0) return ThrowErrno(env, "sock_diag UNIX_DIAG_PEER", static_cast<int>(-peer));
  return Int(env, peer);
}

}  // namespace lanyard
