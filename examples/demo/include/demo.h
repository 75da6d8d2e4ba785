#ifndef DEMO_H
#define DEMO_H
#define SCALE 10
int part1(int), part2(int), part3(int), part4(int), part5(int), part6(int);
#endif
