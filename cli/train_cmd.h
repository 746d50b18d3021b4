/* train_cmd.h — `resad train` (see cli/train.c; core/train.h is the loop). */
#ifndef RD_CLI_TRAIN_CMD_H
#define RD_CLI_TRAIN_CMD_H

int rd_cli_train(int argc, char **argv);

#endif
