#include <glusterfs/api/glfs.h>
