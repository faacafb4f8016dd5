namespace FedAvg.Core;

/// <summary>Something the user asked for is impossible (a flag, an option, a HOCON value). Nothing was started.</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>A data file is missing, corrupt or not what it claims to be.</summary>
public sealed class DataException(string message) : Exception(message);

/// <summary>
/// A result file could not be written once the work was done, although its path passed the checks at start (the disk
/// filled, the directory went away or was made read-only meanwhile). The message names the file and the reason.
/// </summary>
public sealed class OutputException(string message, Exception inner) : Exception(message, inner);

/// <summary>Guards that turn impossible numbers into a <see cref="UsageException"/> naming the option.</summary>
public static class Require
{
    public static void Positive(double value, string option)
    {
        if (!(value > 0) || double.IsInfinity(value)) throw new UsageException($"{option} must be a positive number, got {value}.");
    }

    public static void NonNegative(double value, string option)
    {
        if (!(value >= 0) || double.IsInfinity(value)) throw new UsageException($"{option} must be zero or more, got {value}.");
    }

    public static void AtLeast(long value, long minimum, string option)
    {
        if (value < minimum) throw new UsageException($"{option} must be at least {minimum}, got {value}.");
    }

    public static void InRange(double value, double exclusiveLow, double inclusiveHigh, string option)
    {
        if (!(value > exclusiveLow && value <= inclusiveHigh))
            throw new UsageException($"{option} must be in ({exclusiveLow}, {inclusiveHigh}], got {value}.");
    }
}
