#include <stdio.h>
#include <string.h>
#include "demo.h"

int part3(int x)
{
    char buf[64];
    snprintf(buf, sizeof buf, "part3:%d", x);
    return (int)strlen(buf) + x * 3 + SCALE;
}
