#include <stdexcept>
#include <cstdio>
namespace demo { struct E : std::runtime_error { using std::runtime_error::runtime_error; };
__attribute__((noinline)) int leaf(int x) { if (x > 100) throw E("x"); return x * 3; }
template <class T> __attribute__((noinline)) T twice(T v) { return leaf(int(v)) * 2; }
struct Q { __attribute__((noinline)) long run(int q) const { try { return twice<long>(q); } catch (const E &) { return -1; } } }; }
int main(int argc, char **) { demo::Q q; std::printf("%ld\n", q.run(argc)); return 0; }
