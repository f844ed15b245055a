#include <stdint.h>
#include <stddef.h>
#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>
