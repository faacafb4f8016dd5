namespace FedAvg.Core.Native;

/// <summary>
/// The process-wide switches, from environment variables: each has a default and one alternative, for measuring
/// what the default buys. Any other value is refused with the variable's name.
/// </summary>
/// <param name="MallocTuning">FEDAVG_MALLOC_TUNING: on (default) or off.</param>
/// <param name="SingleThreadedBlas">FEDAVG_BLAS_THREADS: single (default) or intra-op.</param>
/// <param name="MklByCpuFeatures">FEDAVG_MKL_DISPATCH: features (default) or vendor.</param>
public sealed record NativeSettings(bool MallocTuning, bool SingleThreadedBlas, bool MklByCpuFeatures)
{
    public static readonly NativeSettings Default = new(true, true, true);

    public static NativeSettings FromEnvironment() => Parse(Environment.GetEnvironmentVariable);

    public static NativeSettings Parse(Func<string, string?> variable) => new(
        IsDefault(variable, "FEDAVG_MALLOC_TUNING", "on", "off"),
        IsDefault(variable, "FEDAVG_BLAS_THREADS", "single", "intra-op"),
        IsDefault(variable, "FEDAVG_MKL_DISPATCH", "features", "vendor"));

    static bool IsDefault(Func<string, string?> variable, string name, string standard, string alternative)
    {
        var value = variable(name);
        if (string.IsNullOrEmpty(value) || string.Equals(value, standard, StringComparison.OrdinalIgnoreCase)) return true;
        if (string.Equals(value, alternative, StringComparison.OrdinalIgnoreCase)) return false;
        throw new UsageException($"environment variable {name}='{value}': expected {standard} (the default) or {alternative}.");
    }
}
