using System.Runtime.CompilerServices;

namespace FedAvg.Actors.Testing;

/// <summary>
/// A test assembly that uses the kit is the host of its process: the kit applies the process-wide native settings
/// (<see cref="FedAvg.Core.Native.NativeTuning.Apply"/>, which the trainer pool requires) once, when the kit's
/// assembly is first touched, as `fedavg` does at start-up. A test that trains without touching any kit type first
/// calls <c>NativeTuning.Apply()</c> itself.
/// </summary>
static class KitHost
{
#pragma warning disable CA2255 // the kit is loaded by test assemblies, whose process it hosts
    [ModuleInitializer]
    internal static void ApplyNativeSettings() => FedAvg.Core.Native.NativeTuning.Apply();
#pragma warning restore CA2255
}
