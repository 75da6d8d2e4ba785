#include <stdio.h>
#include "demo.h"

int main(void)
{
    int total = part1(1) + part2(2) + part3(3) + part4(4) + part5(5) + part6(6);
    printf("demo: total = %d\n", total);
    return 0;
}
