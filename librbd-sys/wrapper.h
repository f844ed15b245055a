#include <rbd/librbd.h>
#include <rbd/features.h>
