/* The floor for the read_file row: a whole file into one malloc'd buffer
 * with read(2), as a C program would.  Prints "read_file <seconds> <bytes>". */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  int fd = open(argv[1], O_RDONLY);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) { perror(argv[1]); return 1; }
  char *p = malloc((size_t)st.st_size + 1);
  size_t n = 0;
  ssize_t r;
  while ((r = read(fd, p + n, (size_t)st.st_size + 1 - n)) > 0) n += (size_t)r;
  close(fd);
  clock_gettime(CLOCK_MONOTONIC, &b);
  printf("read_file %.3f %zu\n", (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9, n);
  free(p);
  return 0;
}
