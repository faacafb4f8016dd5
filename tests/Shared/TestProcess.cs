using System.Runtime.CompilerServices;

namespace FedAvg.Tests.Shared;

static class TestProcess
{
    /// <summary>
    /// Each test assembly is a host: it applies the process-wide native settings once, on load, as `fedavg` does at
    /// start-up, because tests build models and call libtorch in an order xunit chooses.
    /// </summary>
#pragma warning disable CA2255 // a test assembly, loaded once by the runner
    [ModuleInitializer]
    internal static void ApplyNativeSettings() => FedAvg.Core.Native.NativeTuning.Apply();
#pragma warning restore CA2255
}
