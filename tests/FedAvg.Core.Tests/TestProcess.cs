using System.Runtime.CompilerServices;

namespace FedAvg.Core.Tests;

static class TestProcess
{
    /// <summary>
    /// The product applies its native settings when the first model is built, before any matrix product. Tests in
    /// this assembly also call libtorch directly, in an order xunit chooses, so the settings are applied on load.
    /// </summary>
#pragma warning disable CA2255 // a test assembly, loaded once by the runner
    [ModuleInitializer]
    internal static void ApplyNativeSettings() => Runtime.NativeTuning.Apply();
#pragma warning restore CA2255
}
