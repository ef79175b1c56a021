/** Exit codes shared by every command: scripts branch on them. */
export const EXIT_OK = 0;
/** The command ran and the answer is "no" (verification refused, audit chain broken) or it failed. */
export const EXIT_REJECTED = 1;
/** Bad flags, missing arguments, unreadable input files: the command could not be run as asked. */
export const EXIT_USAGE = 2;
