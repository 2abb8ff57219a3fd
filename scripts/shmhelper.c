/*
 * shmhelper: a tiny SysV shared-memory probe for peapod's IPC-namespace tests.
 *
 *   shmhelper create KEY   create a 4096-byte segment for KEY (IPC_CREAT|0666),
 *                          write "peapod" into it, print the shmid, exit
 *                          (the segment persists)
 *   shmhelper read KEY     attach the segment for KEY and print its content;
 *                          exit 1 if there is none
 *
 * KEY is a number (decimal, 0x-hex or 0-octal). Built statically by
 * scripts/build-test-images.sh into the busybox test image as /bin/shmhelper.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>

#define SEG_SIZE 4096

static int usage(void)
{
    fprintf(stderr, "usage: shmhelper create KEY | shmhelper read KEY\n");
    return 2;
}

static int parse_key(const char *s, key_t *key)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 0);
    if (errno != 0 || end == s || *end != '\0')
        return -1;
    *key = (key_t)v;
    return 0;
}

int main(int argc, char **argv)
{
    key_t key;
    if (argc != 3 || parse_key(argv[2], &key) != 0)
        return usage();

    if (strcmp(argv[1], "create") == 0) {
        int id = shmget(key, SEG_SIZE, IPC_CREAT | 0666);
        if (id < 0) {
            perror("shmget");
            return 1;
        }
        char *p = shmat(id, NULL, 0);
        if (p == (char *)-1) {
            perror("shmat");
            return 1;
        }
        strcpy(p, "peapod");
        if (shmdt(p) != 0) {
            perror("shmdt");
            return 1;
        }
        printf("%d\n", id);
        return 0;
    }

    if (strcmp(argv[1], "read") == 0) {
        int id = shmget(key, 0, 0);
        if (id < 0) {
            fprintf(stderr, "shmhelper: no segment for key %s: %s\n", argv[2], strerror(errno));
            return 1;
        }
        char *p = shmat(id, NULL, SHM_RDONLY);
        if (p == (char *)-1) {
            perror("shmat");
            return 1;
        }
        printf("%.*s\n", (int)strnlen(p, SEG_SIZE), p);
        shmdt(p);
        return 0;
    }

    return usage();
}
