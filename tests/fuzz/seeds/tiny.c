#include <stdio.h>
#include <setjmp.h>
static jmp_buf env;
__attribute__((noinline)) int leaf(int x) { if (x > 100) longjmp(env, 1); return x * 3; }
__attribute__((noinline)) int mid(int x) { return leaf(x) + leaf(x + 1); }
__attribute__((noinline)) int tail(int x) { return mid(x); }
int main(int argc, char **argv) { (void)argv; if (setjmp(env)) return 1; printf("%d\n", tail(argc)); return 0; }
