/*
 * The floor for ci/bench.sh: the least a program can do to run a command in new
 * namespaces, with nothing else. One unshare(2); the maps when a user namespace is new
 * (the caller mapped to root, as `unshare -r`); when a PID namespace is new, one fork,
 * a fresh /proc in the child when asked (as `unshare --mount-proc`), and the wait;
 * otherwise the exec itself.
 *
 * With `standin` among the kinds, all that runs in a minimal stand-in host first, the least
 * that keeps the machine out of reach as the harness's stand-in does (harness/src/standin.rs):
 * new uts, net, mount, ipc, pid and cgroup namespaces in one unshare(2), a fork (PID 1 of
 * the new PID namespace, which the parent waits for), propagation cut, fresh /proc, /sys,
 * /run, /tmp, /dev/shm and /dev/mqueue, a hostname, and the loopback up. Not the harness's
 * cgroups, its kit under /run or its cgroup2 mount: the floor of a safe run, not a copy of it.
 *
 * Usage: floor KINDS COMMAND [ARG...]
 *   KINDS: a comma list of user, uts, pid, net, mount, ipc, cgroup, proc, standin
 *   e.g.   floor uts sh -c 'hostname x; hostname'
 *          floor standin,uts sh -c 'hostname x; hostname'
 *
 * It is C, like the kernel's own selftests: the figure it gives is the kernel's cost plus
 * an exec, with no language runtime in between.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static void die(const char *what)
{
	perror(what);
	exit(125);
}

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		die(path);
	close(fd);
}

/* Wait for `child` and exit as it did. */
static int exit_as(pid_t child)
{
	int status;
	if (waitpid(child, &status, 0) < 0)
		die("waitpid");
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void mount_fs(const char *type, const char *target, const char *data)
{
	if (mount(type, target, type, MS_NOSUID | MS_NODEV, data) < 0)
		die(target);
}

/* The minimal stand-in host (see the top). Returns in its PID 1; the caller's process waits
 * for that and exits. */
static void enter_standin(void)
{
	if (unshare(CLONE_NEWUTS | CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWPID |
		    CLONE_NEWCGROUP) < 0)
		die("unshare (stand-in)");
	pid_t init = fork();
	if (init < 0)
		die("fork (stand-in)");
	if (init > 0)
		exit(exit_as(init));
	if (mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		die("mount --make-rprivate / (stand-in)");
	if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		die("/proc");
	mount_fs("sysfs", "/sys", NULL);
	mount_fs("tmpfs", "/run", "mode=755");
	mount_fs("tmpfs", "/tmp", "mode=1777");
	/* As the stand-in: only where the machine has the mount point. */
	if (access("/dev/shm", F_OK) == 0)
		mount_fs("tmpfs", "/dev/shm", "mode=1777");
	if (access("/dev/mqueue", F_OK) == 0)
		mount_fs("mqueue", "/dev/mqueue", NULL);
	if (sethostname("standin", 7) < 0)
		die("sethostname (stand-in)");
	struct ifreq lo = { .ifr_name = "lo" };
	int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sock < 0 || ioctl(sock, SIOCGIFFLAGS, &lo) < 0)
		die("lo (stand-in)");
	lo.ifr_flags |= IFF_UP;
	if (ioctl(sock, SIOCSIFFLAGS, &lo) < 0)
		die("lo up (stand-in)");
	close(sock);
}

int main(int argc, char **argv)
{
	int flags = 0, proc = 0, standin = 0;
	char kinds[256], text[64];
	if (argc < 3) {
		fprintf(stderr, "usage: floor KINDS COMMAND [ARG...]\n");
		return 2;
	}
	snprintf(kinds, sizeof kinds, "%s", argv[1]);
	for (char *kind = strtok(kinds, ","); kind; kind = strtok(NULL, ",")) {
		if (!strcmp(kind, "user")) flags |= CLONE_NEWUSER;
		else if (!strcmp(kind, "uts")) flags |= CLONE_NEWUTS;
		else if (!strcmp(kind, "pid")) flags |= CLONE_NEWPID;
		else if (!strcmp(kind, "net")) flags |= CLONE_NEWNET;
		else if (!strcmp(kind, "mount")) flags |= CLONE_NEWNS;
		else if (!strcmp(kind, "ipc")) flags |= CLONE_NEWIPC;
		else if (!strcmp(kind, "cgroup")) flags |= CLONE_NEWCGROUP;
		else if (!strcmp(kind, "proc")) proc = 1;
		else if (!strcmp(kind, "standin")) standin = 1;
		else {
			fprintf(stderr, "floor: unknown namespace `%s`\n", kind);
			return 2;
		}
	}
	uid_t uid = getuid();
	gid_t gid = getgid();
	if (standin)
		enter_standin();
	if (unshare(flags) < 0)
		die("unshare");
	if (flags & CLONE_NEWUSER) {
		write_file("/proc/self/setgroups", "deny");
		snprintf(text, sizeof text, "0 %u 1", uid);
		write_file("/proc/self/uid_map", text);
		snprintf(text, sizeof text, "0 %u 1", gid);
		write_file("/proc/self/gid_map", text);
	}
	/* As unshare(1) does by default. */
	if ((flags & CLONE_NEWNS) && mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		die("mount --make-rprivate /");
	if (!(flags & CLONE_NEWPID)) {
		execvp(argv[2], argv + 2);
		die(argv[2]);
	}
	pid_t child = fork();
	if (child < 0)
		die("fork");
	if (child == 0) {
		if (proc && mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
			die("mount proc");
		execvp(argv[2], argv + 2);
		die(argv[2]);
	}
	return exit_as(child);
}
