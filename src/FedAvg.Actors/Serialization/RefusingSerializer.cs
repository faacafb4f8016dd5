using System.Runtime.Serialization;
using Akka.Actor;
using Akka.Serialization;

namespace FedAvg.Actors.Serialization;

/// <summary>
/// Takes the place of Akka's Newtonsoft JSON serializer (identifier 1, the fallback for types without a binding), which
/// reads type names from the bytes it is given: the classic deserialization attack surface. With
/// <c>allow-unregistered-types = off</c> Akka never picks it to send; this class makes sure that bytes arriving with
/// serializer id 1 are refused as well, instead of being handed to Newtonsoft.
/// </summary>
public sealed class RefusingSerializer(ExtendedActorSystem system) : Serializer(system)
{
    /// <summary>Akka passes `serialization-settings.json` to the serializer named `json`.</summary>
    public RefusingSerializer(ExtendedActorSystem system, Akka.Configuration.Config _) : this(system)
    {
    }

    public const int JsonIdentifier = 1;
    public override int Identifier => JsonIdentifier;
    public override bool IncludeManifest => true;

    public override byte[] ToBinary(object obj) =>
        throw new SerializationException($"{obj.GetType()} has no serializer binding, and FedAvg.Actors sends nothing as JSON " +
                                         "(akka.actor.serialization-settings.allow-unregistered-types = off).");

    public override object FromBinary(byte[] bytes, Type? type) =>
        throw new SerializationException($"refused a message of {bytes.Length} bytes for Akka's JSON serializer (id {JsonIdentifier}, type '{type}'): " +
                                         "FedAvg.Actors accepts no JSON from the wire.");
}
