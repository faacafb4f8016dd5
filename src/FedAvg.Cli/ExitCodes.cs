namespace FedAvg.Cli;

/// <summary>The exit codes of `fedavg`, as documented in the README.</summary>
public static class ExitCodes
{
    public const int Success = 0;
    /// <summary>An unexpected failure while running (a bug, or the machine ran out of something).</summary>
    public const int RuntimeFailure = 1;
    /// <summary>Bad flags, option values or configuration; nothing was started.</summary>
    public const int UsageError = 2;
    /// <summary>Data missing, corrupt or mismatched (IDX files, checksums, checkpoints).</summary>
    public const int DataError = 3;
    /// <summary>The federation could not finish (too few clients answered, a round failed for good).</summary>
    public const int RunFailed = 4;
    /// <summary>Stopped by Ctrl+C or SIGTERM.</summary>
    public const int Interrupted = 130;
}
