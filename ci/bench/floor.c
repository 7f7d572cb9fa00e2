/*
 * The floor for ci/bench.sh: the least a program can do to run a command in new
 * namespaces, with nothing else. One unshare(2); the maps when a user namespace is new
 * (the caller mapped to root, as `unshare -r`); when a PID namespace is new, one fork,
 * a fresh /proc in the child when asked (as `unshare --mount-proc`), and the wait;
 * otherwise the exec itself.
 *
 * Usage: floor KINDS COMMAND [ARG...]
 *   KINDS: a comma list of user, uts, pid, net, mount, ipc, cgroup, proc
 *   e.g.   floor uts sh -c 'hostname x; hostname'
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
#include <sys/mount.h>
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

int main(int argc, char **argv)
{
	int flags = 0, proc = 0;
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
		else {
			fprintf(stderr, "floor: unknown namespace `%s`\n", kind);
			return 2;
		}
	}
	uid_t uid = getuid();
	gid_t gid = getgid();
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
	int status;
	if (waitpid(child, &status, 0) < 0)
		die("waitpid");
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
